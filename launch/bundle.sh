#!/usr/bin/env bash
# Builds a relocatable capscale bundle for a bare GPU node (CUDA driver + toolkit, no Open MPI,
# HDF5, yaml-cpp or OpenBLAS, no package registry). See docs/bundle.md.
#
#   launch/bundle.sh                 build (or bring up to date) build/release, then assemble
#                                    dist/capscale-bundle/ and dist/capscale-bundle.tar.gz
#   launch/bundle.sh --no-build      reuse the existing binary as it is
#   launch/bundle.sh --build-dir D   use build dir D (default build/release, configured with the
#                                    'release' preset when it does not exist yet)
#   launch/bundle.sh -j N            build jobs (default: all cores)
#   launch/bundle.sh --with-gpu-tests  also pack the GPU test binary (bin/capscale_gpu_tests), so
#                                    launch/gpu_check.sh --bundle can check a node with no compiler
#
# The bundle holds the capscale binary, Open MPI (libraries, the MCA components a bare node can
# load, help text, mpirun/orted), HDF5, yaml-cpp, OpenBLAS and everything they link, except glibc
# and the CUDA libraries (cudart, cuBLAS, cuBLASLt, NCCL, the driver), which come from the target.
# Layout: bin/{capscale,mpirun,orted,capscale-bundle-check} are sh wrappers that set OPAL_*/PMIX_*
# and LD_LIBRARY_PATH and exec bin/*.bin; lib/ (RUNPATH $ORIGIN), lib/openmpi (MCA components),
# lib/pmix, share/openmpi, share/pmix, share/capscale/configs, etc/openmpi-mca-params.conf.
# Fails (exit 1) when the tarball exceeds 64 MiB.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo_root
readonly max_bytes=$((64 * 1024 * 1024))

die() {
  echo "bundle.sh: $*" >&2
  exit 1
}
usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
}

build_dir="$repo_root/build/release"
do_build=1
with_gpu_tests=0
jobs="$(nproc 2>/dev/null || echo 2)"
while (($#)); do
  case "$1" in
    --no-build) do_build=0 ;;
    --with-gpu-tests) with_gpu_tests=1 ;;
    --build-dir)
      [[ $# -ge 2 ]] || { echo "bundle.sh: --build-dir needs a directory" >&2; exit 2; }
      build_dir="$(realpath -m "$2")"
      shift
      ;;
    -j)
      [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || { echo "bundle.sh: -j needs a number" >&2; exit 2; }
      jobs="$2"
      shift
      ;;
    -j[0-9]*) jobs="${1#-j}" ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "bundle.sh: unknown argument '$1' (allowed: --no-build, --with-gpu-tests, --build-dir DIR, -j N, --help)" >&2
      exit 2
      ;;
  esac
  shift
done

for tool in ldd objdump readelf ompi_info orterun orted tar gzip; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (run launch/deps.sh on the build machine)"
done

# ---------------------------------------------------------------------------------------------
# 1. The binary.
if ((do_build)); then
  if [[ ! -f $build_dir/CMakeCache.txt ]]; then
    [[ $build_dir == "$repo_root/build/release" ]] || die "$build_dir is not a configured build dir"
    (cd "$repo_root" && cmake --preset release)
  fi
  targets=(capscale)
  # src/exec/cuda is configured only when the CUDA toolkit was found.
  if [[ -d $build_dir/src/exec/cuda ]]; then targets+=(capscale_cuda); fi
  if ((with_gpu_tests)); then targets+=(capscale_gpu_tests); fi
  cmake --build "$build_dir" --target "${targets[@]}" -j "$jobs"
fi
exe="$build_dir/src/capscale"
[[ -x $exe ]] || die "no binary at $exe (drop --no-build, or build it first)"
# The CUDA backend is a plugin next to the binary (docs/bundle.md); capscale itself links no CUDA.
plugin="$build_dir/src/libcapscale_cuda.so"
plugins=()
if [[ -f $plugin ]]; then
  plugins=("$plugin")
else
  echo "bundle.sh: WARNING: no CUDA plugin at $plugin (nvcc was not found at configure time);" \
    "the bundle will run --backend cpu only" >&2
fi
# The GPU tests (tests/gpu) link the CUDA backend statically and need the same libraries.
extra_bins=()
if ((with_gpu_tests)); then
  gpu_tests="$build_dir/tests/capscale_gpu_tests"
  [[ -x $gpu_tests ]] || die "no GPU test binary at $gpu_tests (it is built only when nvcc was found)"
  extra_bins=("$gpu_tests")
fi

# ---------------------------------------------------------------------------------------------
# 2. What goes in. Libraries are taken from the ldd closure of every ELF file we ship, minus
#    glibc (the target's loader must match it) and minus the CUDA libraries (the target's toolkit
#    and driver provide them, matched to its driver).
readonly glibc_re='^(linux-vdso|ld-linux-x86-64|libc|libm|libmvec|libdl|libpthread|librt|libresolv|libutil|libanl|libBrokenLocale|libthread_db|libnss_[a-z]+)\.so'
readonly target_re='^lib(cuda|cudart|cublas|cublasLt|nccl|nvrtc|nvrtc-builtins|nvJitLink|nvidia-[a-z-]+|cufft|curand|cusparse|cusolver)\.so'
# MCA components that need fabric/vendor libraries a bare node lacks (UCX, libfabric, verbs, PSM,
# libnl) are left out; Open MPI then uses ob1 with the self/vader(shared memory)/tcp transports.
readonly absent_re='^lib(ucp|ucs|uct|ucm|fabric|ibverbs|rdmacm|psm_infinipath|psm2|nl-3|nl-route-3|mca_common_(ucx|ofi|verbs))\.so'
# OpenSHMEM-only frameworks and the debugger plugin: capscale does not use them.
readonly skip_component_re='^(mca_(spml|sshmem|memheap|atomic|scoll)_|libompi_dbg_msgq)'

ompi_pkglibdir="$(ompi_info --parsable --path pkglibdir | cut -d: -f3-)"
ompi_pkgdatadir="$(ompi_info --parsable --path pkgdatadir | cut -d: -f3-)"
[[ -d $ompi_pkglibdir && -d $ompi_pkgdatadir ]] || die "cannot locate Open MPI's component/help dirs"
orterun_bin="$(readlink -f "$(command -v orterun)")"
orted_bin="$(readlink -f "$(command -v orted)")"

# "soname path" for each library file the given ELF objects load (ldd resolves transitively).
# Returns 1 (naming the library) when something is not found, except the CUDA libraries (taken
# from the target anyway).
closure() {
  local f line name out
  for f in "$@"; do
    out="$(ldd "$f" 2>&1)" || { echo "ldd $f failed: $out" >&2; return 1; }
    while IFS= read -r line; do
      if [[ $line =~ ^[[:space:]]*([^[:space:]]+)\ =\>\ not\ found ]]; then
        name="${BASH_REMATCH[1]}"
        [[ $name =~ $target_re ]] && continue
        echo "$f needs $name, which is not found on this machine" >&2
        return 1
      elif [[ $line =~ ^[[:space:]]*([^[:space:]]+)\ =\>\ (/[^[:space:]]+) ]]; then
        echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
      fi
    done <<<"$out"
  done
}

# MCA components: keep those whose closure is installed here and needs nothing in absent_re.
components=()
skipped=()
for so in "$ompi_pkglibdir"/*.so; do
  base="$(basename "$so")"
  if [[ $base =~ $skip_component_re ]]; then
    skipped+=("$base")
    continue
  fi
  if deps="$(closure "$so" 2>/dev/null)" && ! grep -Eq "$absent_re" <<<"$deps"; then
    components+=("$so")
  else
    skipped+=("$base")
  fi
done

# PMIx (mpirun <-> ranks): Open MPI's ext3x component links the external libpmix, which has its own
# plugin and help dirs; find them next to the libpmix that component loads.
pmix_lib=""
if deps="$(closure "$ompi_pkglibdir/mca_pmix_ext3x.so" 2>/dev/null)"; then
  pmix_lib="$(awk '$1 ~ /^libpmix\.so/ {print $2}' <<<"$deps" | head -1)"
  [[ -n $pmix_lib ]] && pmix_lib="$(readlink -f "$pmix_lib")"
fi
pmix_plugins=()
pmix_help=""
if [[ -n $pmix_lib ]]; then
  pmix_dir="$(dirname "$pmix_lib")"
  for so in "$pmix_dir"/pmix/*.so; do [[ -f $so ]] && pmix_plugins+=("$so"); done
  [[ -d $pmix_dir/../share/pmix ]] && pmix_help="$(cd "$pmix_dir/../share/pmix" && pwd)"
fi

# ---------------------------------------------------------------------------------------------
# 3. Assemble.
dist="$repo_root/dist"
bundle="$dist/capscale-bundle"
rm -rf "$bundle" "$dist/capscale-bundle.tar.gz"
mkdir -p "$bundle"/{bin,lib/openmpi,lib/pmix,etc,share/capscale,share/doc/capscale-bundle/licenses}

install -m 0755 "$exe" "$bundle/bin/capscale.bin"
# Next to capscale.bin, where the binary looks for it (the directory of /proc/self/exe).
for so in "${plugins[@]}"; do install -m 0644 "$so" "$bundle/bin/"; done
for b in "${extra_bins[@]}"; do install -m 0755 "$b" "$bundle/bin/$(basename "$b").bin"; done
install -m 0755 "$orterun_bin" "$bundle/bin/orterun.bin"
install -m 0755 "$orted_bin" "$bundle/bin/orted.bin"
for so in "${components[@]}"; do install -m 0644 "$so" "$bundle/lib/openmpi/"; done
for so in "${pmix_plugins[@]}"; do install -m 0644 "$so" "$bundle/lib/pmix/"; done

all_deps="$(closure "$exe" "${plugins[@]}" "${extra_bins[@]}" "$orterun_bin" "$orted_bin" "${components[@]}" "${pmix_plugins[@]}")" ||
  die "cannot resolve the libraries to bundle"
declare -A libs=()
while read -r name path; do
  [[ $name =~ $glibc_re || $name =~ $target_re ]] && continue
  libs["$name"]="$path"
done <<<"$all_deps"
for name in "${!libs[@]}"; do
  install -m 0644 "$(readlink -f "${libs[$name]}")" "$bundle/lib/$name"
done

# Help text (without the compiler-wrapper data), PMIx help, configs.
cp -r "$ompi_pkgdatadir" "$bundle/share/openmpi"
rm -f "$bundle"/share/openmpi/*-wrapper-data.txt
if [[ -n $pmix_help ]]; then cp -r "$pmix_help" "$bundle/share/pmix"; fi
cp -r "$repo_root/configs" "$bundle/share/capscale/configs"

# Strip (our binary carries symbols; Debian's libraries are stripped already), then point every
# ELF file at the bundle's lib/ so the binaries also work without the wrappers.
if command -v strip >/dev/null 2>&1; then
  strip --strip-unneeded "$bundle"/bin/*.bin "$bundle"/bin/*.so "$bundle"/lib/*.so* "$bundle"/lib/openmpi/*.so \
    "$bundle"/lib/pmix/*.so 2>/dev/null || true
fi
if command -v patchelf >/dev/null 2>&1; then
  # shellcheck disable=SC2016 # $ORIGIN is for the dynamic loader, not the shell
  {
    for f in "$bundle"/bin/*.bin "$bundle"/bin/*.so; do
      if [[ -f $f ]]; then patchelf --set-rpath '$ORIGIN/../lib' "$f"; fi
    done
    for f in "$bundle"/lib/*.so*; do patchelf --set-rpath '$ORIGIN' "$f"; done
    for f in "$bundle"/lib/openmpi/*.so "$bundle"/lib/pmix/*.so; do
      if [[ -f $f ]]; then patchelf --set-rpath '$ORIGIN/..' "$f"; fi
    done
  }
else
  echo "bundle.sh: patchelf not found; the bin/ wrappers set LD_LIBRARY_PATH instead of RUNPATH" \
    "(apt-get install patchelf to make bin/*.bin runnable without them)" >&2
fi

# Open MPI settings for the bundle (the system's /etc/openmpi is not read: OPAL_SYSCONFDIR).
cat >"$bundle/etc/openmpi-mca-params.conf" <<'EOF'
# Open MPI MCA parameters for the capscale bundle (read via OPAL_SYSCONFDIR=<bundle>/etc).
# The bundle ships only the self, vader (shared memory) and tcp transports; do not warn about the
# InfiniBand/RoCE hardware they leave unused (NCCL uses it for the GPU collectives).
btl_base_warn_component_unused = 0
EOF
cat >"$bundle/etc/pmix-mca-params.conf" <<'EOF'
# PMIx MCA parameters for the capscale bundle (read via PMIX_MCA_mca_base_param_files); none set.
EOF
cat >"$bundle/etc/openmpi-default-hostfile" <<'EOF'
# Default hostfile of the capscale bundle: empty (mpirun runs on the local node unless given
# --host or --hostfile).
EOF

# The environment every wrapper sets. POSIX sh: the target may not have bash in every PATH.
cat >"$bundle/lib/bundle-env.sh" <<'EOF'
# shellcheck shell=sh
# Sourced by the capscale bundle's bin/ wrappers with CAPSCALE_BUNDLE set to the bundle root.
# Makes Open MPI, PMIx and hwloc use the bundle's files (whatever Open MPI the node may have), puts
# the bundle's lib/ first on LD_LIBRARY_PATH, and appends the node's CUDA libraries as a fallback.
B="$CAPSCALE_BUNDLE"
export OPAL_PREFIX="$B" OPAL_EXEC_PREFIX="$B" OPAL_BINDIR="$B/bin" OPAL_SBINDIR="$B/bin"
export OPAL_LIBDIR="$B/lib" OPAL_PKGLIBDIR="$B/lib/openmpi" OPAL_LIBEXECDIR="$B/bin"
export OPAL_DATAROOTDIR="$B/share" OPAL_DATADIR="$B/share" OPAL_PKGDATADIR="$B/share/openmpi"
export OPAL_SYSCONFDIR="$B/etc" OPAL_INCLUDEDIR="$B/include" OPAL_PKGINCLUDEDIR="$B/include"
export PMIX_PREFIX="$B" PMIX_LIBDIR="$B/lib" PMIX_PKGLIBDIR="$B/lib/pmix"
export PMIX_DATADIR="$B/share" PMIX_PKGDATADIR="$B/share/pmix"
export PMIX_MCA_mca_base_component_path="$B/lib/pmix"
export PMIX_MCA_mca_base_param_files="$B/etc/pmix-mca-params.conf"
# hwloc: no plugins (the node's, if any, belong to another hwloc build).
export HWLOC_PLUGINS_PATH="$B/lib/hwloc"
# One rank without a launcher: Open MPI's singleton mode, without forking an orted.
export OMPI_MCA_ess_singleton_isolated="${OMPI_MCA_ess_singleton_isolated:-1}"
# mpirun on a node without ssh/rsh: launch on this node only (plm isolated) instead of failing.
if [ -z "${OMPI_MCA_plm:-}${OMPI_MCA_plm_rsh_agent:-}" ] && ! command -v ssh >/dev/null 2>&1 &&
  ! command -v rsh >/dev/null 2>&1; then
  export OMPI_MCA_plm=isolated
fi
ld="$B/lib"
if [ -n "${LD_LIBRARY_PATH:-}" ]; then ld="$ld:$LD_LIBRARY_PATH"; fi
for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
  if [ -n "$d" ] && [ -d "$d/lib64" ]; then ld="$ld:$d/lib64"; break; fi
done
export LD_LIBRARY_PATH="$ld"
unset B ld d
EOF

wrapped=(capscale:capscale.bin mpirun:orterun.bin orted:orted.bin)
for b in "${extra_bins[@]}"; do wrapped+=("$(basename "$b"):$(basename "$b").bin"); done
for pair in "${wrapped[@]}"; do
  sed "s|@BIN@|${pair#*:}|g" >"$bundle/bin/${pair%%:*}" <<'EOF'
#!/bin/sh
# capscale bundle wrapper: sets the bundle's environment (lib/bundle-env.sh), then runs bin/@BIN@.
self=$(readlink -f "$0" 2>/dev/null || echo "$0")
CAPSCALE_BUNDLE=$(cd "$(dirname "$self")/.." && pwd -P)
export CAPSCALE_BUNDLE
# shellcheck source=/dev/null
. "$CAPSCALE_BUNDLE/lib/bundle-env.sh"
exec "$CAPSCALE_BUNDLE/bin/@BIN@" "$@"
EOF
  chmod 0755 "$bundle/bin/${pair%%:*}"
done

# The oldest glibc the bundle runs on: the highest GLIBC_x.y symbol version any file needs.
glibc_min="$(objdump -T "$bundle"/bin/*.bin "$bundle"/lib/*.so* "$bundle"/lib/openmpi/*.so 2>/dev/null |
  grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -t. -k1,1n -k2,2n -k3,3n -u | tail -1)"
cuda_needed="$(objdump -p "$bundle"/bin/capscale.bin "$bundle"/bin/*.so 2>/dev/null | awk '/NEEDED/ {print $2}' | sort -u |
  grep -E "$target_re" | tr '\n' ' ' | sed 's/ $//' || true)"

sed -e "s|@GLIBC_MIN@|$glibc_min|g" -e "s|@CUDA_NEEDED@|${cuda_needed:-none}|g" \
  >"$bundle/bin/capscale-bundle-check" <<'EOF'
#!/bin/sh
# Checks that this node can run the capscale bundle: glibc >= @GLIBC_MIN@, and every library the
# binary needs resolves, the bundle's own from its lib/ and the CUDA ones (@CUDA_NEEDED@)
# from the node (LD_LIBRARY_PATH, $CUDA_HOME/lib64, /usr/local/cuda/lib64 or the system dirs).
self=$(readlink -f "$0" 2>/dev/null || echo "$0")
CAPSCALE_BUNDLE=$(cd "$(dirname "$self")/.." && pwd -P)
export CAPSCALE_BUNDLE
# shellcheck source=/dev/null
. "$CAPSCALE_BUNDLE/lib/bundle-env.sh"
status=0
have=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
need=@GLIBC_MIN@
if [ -z "$have" ] || [ "$(printf '%s\n%s\n' "$need" "$have" | sort -t. -k1,1n -k2,2n | head -1)" != "$need" ]; then
  echo "glibc: this node has '${have:-unknown}', the bundle needs >= $need"
  status=1
else
  echo "glibc: $have (>= $need) ok"
fi
# what ldd does, without needing ldd
out=$(LD_TRACE_LOADED_OBJECTS=1 "$CAPSCALE_BUNDLE/bin/capscale.bin" 2>&1) || { echo "$out"; exit 1; }
# The CUDA plugin (loaded by --backend cuda only) is where the CUDA libraries are needed.
plugin="$CAPSCALE_BUNDLE/bin/libcapscale_cuda.so"
if [ -f "$plugin" ] && [ -x /lib64/ld-linux-x86-64.so.2 ]; then
  out="$out
$(/lib64/ld-linux-x86-64.so.2 --list "$plugin" 2>&1)"
elif [ ! -f "$plugin" ]; then
  echo "note: no CUDA plugin in this bundle: only --backend cpu works"
fi
echo "from the node's CUDA install:"
echo "$out" | grep -E 'lib(cudart|cublas|cublasLt|nccl)\.so' | sed 's/ *(0x[0-9a-f]*)//; s/^[[:space:]]*/  /'
if echo "$out" | grep -q 'not found'; then
  echo "MISSING (put the node's CUDA lib64 on LD_LIBRARY_PATH, or set CUDA_HOME):"
  echo "$out" | grep 'not found'
  status=1
fi
outside=$(echo "$out" | awk '/=> \// {print $3}' | grep -v "^$CAPSCALE_BUNDLE/" |
  grep -Ev '/(libc|libm|libmvec|libdl|libpthread|librt|libresolv|ld-linux-x86-64)\.so|/lib(cudart|cublas|cublasLt|nccl|cuda)\.so' || true)
if [ -n "$outside" ]; then
  echo "unexpected libraries from outside the bundle:"
  echo "$outside"
  status=1
fi
if ! { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep -q 'libcuda\.so\.1 '; then
  echo "note: libcuda.so.1 (the NVIDIA driver) is not in the loader cache: only --backend cpu may work"
fi
if [ "$status" = 0 ]; then echo "ok: this node can run $CAPSCALE_BUNDLE/bin/capscale"; fi
exit "$status"
EOF
chmod 0755 "$bundle/bin/capscale-bundle-check"

# Documentation, manifest, licences of what we redistribute.
[[ -f $repo_root/docs/bundle.md ]] && cp "$repo_root/docs/bundle.md" "$bundle/README.md"
git_sha="$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
os_name="$(sed -n 's/^PRETTY_NAME=//p' /etc/os-release 2>/dev/null | tr -d '"')"
licenses="$bundle/share/doc/capscale-bundle/licenses"
copy_license() {
  if [[ -f /usr/share/doc/$1/copyright ]]; then cp "/usr/share/doc/$1/copyright" "$licenses/$1.copyright"; fi
}
{
  echo "capscale bundle, built $(date -u +%Y-%m-%dT%H:%M:%SZ) from git $git_sha"
  echo "build host: ${os_name:-unknown}, glibc $(getconf GNU_LIBC_VERSION | awk '{print $2}')"
  echo "needs on the target: x86-64 Linux, glibc >= $glibc_min, from its CUDA install: ${cuda_needed:-nothing}"
  echo "MCA components left out (need libraries a bare node lacks, or unused): ${skipped[*]}"
  echo
  echo "bundled libraries: lib/NAME  <- file on the build host  [Debian package version]"
  while read -r name; do
    src="$(readlink -f "${libs[$name]}")"
    pkg=""
    if command -v dpkg >/dev/null 2>&1; then
      pkg="$(dpkg -S "$src" 2>/dev/null | head -1 | cut -d: -f1 || true)"
      [[ -n $pkg ]] || pkg="$(dpkg -S "${libs[$name]}" 2>/dev/null | head -1 | cut -d: -f1 || true)"
    fi
    ver=""
    if [[ -n $pkg ]]; then
      ver="$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)"
      copy_license "$pkg"
    fi
    printf '  %-30s <- %s  [%s %s]\n' "$name" "$src" "${pkg:-?}" "$ver"
  done < <(printf '%s\n' "${!libs[@]}" | sort)
} >"$bundle/MANIFEST.txt"
for pkg in openmpi-bin openmpi-common libpmix2; do copy_license "$pkg"; done

# ---------------------------------------------------------------------------------------------
# 4. Tarball and size check.
tarball="$dist/capscale-bundle.tar.gz"
tar -C "$dist" --sort=name --owner=0 --group=0 --numeric-owner -cf - capscale-bundle | gzip -9 >"$tarball"
bytes="$(stat -c %s "$tarball")"
unpacked="$(du -sb "$bundle" | cut -f1)"
awk -v t="${tarball#"$repo_root"/}" -v b="$bytes" -v u="$unpacked" 'BEGIN {
  printf "bundle.sh: %s: %d bytes (%.1f MiB; %.1f MiB unpacked), limit 64 MiB\n", t, b, b / 1048576, u / 1048576 }'
echo "bundle.sh: ${#libs[@]} libraries, ${#components[@]} MCA components, ${#pmix_plugins[@]} PMIx plugins;" \
  "the target needs glibc >= $glibc_min and ${cuda_needed:-no CUDA libraries}"
if ((bytes > max_bytes)); then
  die "the tarball is $bytes bytes, over the $((max_bytes / 1048576)) MiB limit ($max_bytes bytes)"
fi
