"""The container images against the one source of truth (issue 14): the CPU image installs what
launch/deps.sh lists by running it, builds with the preset launch/test.sh and the README use, puts
the binary and the Python module where the README says; the CUDA image's inline package list holds
every package of launch/deps.sh but the dev-only tools; both entry points know every subcommand.
    /usr/bin/python3 tests/lint/docker_drift.py REPO_ROOT CAPSCALE_BIN
Exit 0 when nothing drifted, 1 listing every drift.
"""
import pathlib
import re
import subprocess
import sys

# Packages an image may add to launch/deps.sh's list, with the reason.
EXTRAS = {"openssh-client": "Open MPI's launcher wants an rsh agent; only a Recommends of openmpi-bin"}
# launch/deps.sh packages that only the test suite on a development host needs.
DEV_ONLY = {"shellcheck": "lints the launch scripts", "python3-pip": "fetches the PyPI lint tools (--lint-tools)"}


def logical_lines(text):
    """Dockerfile lines with backslash continuations joined and comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not cur:
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        out.append(cur + line)
        cur = ""
    if cur:
        out.append(cur)
    return [l.strip() for l in out if l.strip()]


def apt_packages(lines):
    pkgs = set()
    for l in lines:
        for m in re.finditer(r"apt-get install ([^&;|]*)", l):
            pkgs |= {w for w in m.group(1).split() if not w.startswith("-")}
    return pkgs


def deps_packages(root):
    text = (root / "launch/deps.sh").read_text()
    m = re.search(r"readonly packages=\((.*?)\)", text, re.S)
    return set(re.sub(r"#.*", "", m.group(1)).split())


def default_preset(root):
    m = re.search(r'preset="\$\{CAPSCALE_PRESET:-([a-z]+)\}"', (root / "launch/test.sh").read_text())
    return m.group(1)


def subcommands(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=60).stdout
    section = re.split(r"^(?:SUBCOMMANDS|Subcommands):$", out, maxsplit=1, flags=re.M)[1]
    return {m.group(1) for m in re.finditer(r"^\s+([a-z]+)\s", section, re.M)}


def entrypoint_commands(lines):
    for l in lines:
        if l.startswith("ENTRYPOINT"):
            m = re.search(r'case \\"\$1\\" in ([a-z|]+)\|-\*', l)
            return set(m.group(1).split("|")) if m else set()
    return set()


def main(root, binary):
    root = pathlib.Path(root)
    problems = []
    deps = deps_packages(root)
    preset = default_preset(root)
    commands = subcommands(binary)
    readme = (root / "README.md").read_text()

    cpu = logical_lines((root / "docker/Dockerfile.cpu").read_text())
    if "COPY launch/deps.sh launch/deps.sh" not in cpu:
        problems.append("Dockerfile.cpu: does not COPY launch/deps.sh (the one package list)")
    if not any(re.match(r"RUN \./launch/deps\.sh( |$)", l) for l in cpu):
        problems.append("Dockerfile.cpu: does not RUN ./launch/deps.sh")
    for p in sorted(apt_packages(cpu) - deps - EXTRAS.keys()):
        problems.append(f"Dockerfile.cpu: installs {p}, which launch/deps.sh does not list (add it there)")
    build = " ".join(l for l in cpu if l.startswith("RUN"))
    for step in (f"cmake --preset {preset}", f"cmake --build --preset {preset}"):
        if step not in build:
            problems.append(f"Dockerfile.cpu: no '{step}' (launch/test.sh builds preset {preset})")
    env = " ".join(l for l in cpu if l.startswith("ENV"))
    if f"/opt/capscale/build/{preset}/src" not in env:
        problems.append(f"Dockerfile.cpu: PATH lacks build/{preset}/src")
    if f"PYTHONPATH=/opt/capscale/build/{preset}/python" not in env:
        problems.append(f"Dockerfile.cpu: PYTHONPATH is not build/{preset}/python (the README's import capscale setup)")
    # The README's setup uses the same script, preset and module path.
    for text in ("./launch/deps.sh", f"cmake --preset {preset}", f"cmake --build --preset {preset}", f"build/{preset}/python"):
        if text not in readme:
            problems.append(f"README.md: no '{text}' (the image builds with it)")

    cuda = logical_lines((root / "docker/Dockerfile").read_text())
    cuda_pkgs = apt_packages(cuda)
    for p in sorted(deps - cuda_pkgs - DEV_ONLY.keys()):
        problems.append(f"Dockerfile: does not install {p}, which launch/deps.sh lists")
    for p in sorted(cuda_pkgs - deps - EXTRAS.keys()):
        problems.append(f"Dockerfile: installs {p}, which launch/deps.sh does not list")
    cuda_env = " ".join(l for l in cuda if l.startswith("ENV"))
    if "PYTHONPATH=/opt/capscale/build/cuda/python" not in cuda_env:
        problems.append("Dockerfile: PYTHONPATH is not build/cuda/python")

    for name, lines in (("Dockerfile.cpu", cpu), ("Dockerfile", cuda)):
        got = entrypoint_commands(lines)
        if got != commands:
            problems.append(f"{name}: ENTRYPOINT passes {sorted(got)} to capscale; its subcommands are {sorted(commands)}")

    for p in problems:
        print("drift:", p)
    print(f"checked docker/ against launch/deps.sh ({len(deps)} packages), preset {preset}, "
          f"{len(commands)} subcommands: {'ok' if not problems else str(len(problems)) + ' problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
