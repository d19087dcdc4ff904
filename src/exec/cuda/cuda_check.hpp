// Check macros for the CUDA runtime, cuBLAS/cuBLASLt and NCCL (nccl-tests' CUDACHECK/NCCLCHECK and
// llm.c's cudaCheck_, but throwing capscale::RuntimeError instead of exiting): the message names the
// call, file:line, world rank, host and CUDA device, so a failure on rank 97 of 512 says where it was.
// Host-only header: usable from .cu and .cpp files alike.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

#include <string>

#include "common/error.hpp"

namespace capscale::exec::cuda {

/// "rank R (host H, device D)": where an error happened. Rank from MPI when it is up, else -1;
/// device from the CUDA runtime (the one this thread selected).
inline std::string where_am_i() {
  int rank = -1, inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (inited && !finalized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int dev = -1;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    (void)cudaGetLastError();  // do not leave a sticky "no device" error behind
    dev = -1;
  }
  return "rank " + std::to_string(rank) + " (host " + host_name() + ", device " + std::to_string(dev) + ")";
}

[[noreturn]] inline void throw_lib_error(const char* lib, const char* call, const char* file, int line,
                                         const std::string& detail) {
  throw RuntimeError(std::string(lib) + " error in " + call + " at " + file + ":" + std::to_string(line) + " on " +
                     where_am_i() + ": " + detail);
}

inline void check_cuda(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a non-sticky error so later calls report their own
  throw_lib_error("CUDA", call, file, line, std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e));
}

inline void check_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw_lib_error("cuBLAS", call, file, line, std::string(cublasGetStatusName(s)) + ": " + cublasGetStatusString(s));
}

inline void check_nccl(ncclResult_t r, const char* call, const char* file, int line) {
  if (r == ncclSuccess) return;
  // ncclGetLastError(NULL) holds NCCL's own text for the last failure on this thread (NCCL ≥ 2.13).
  throw_lib_error("NCCL", call, file, line, std::string(ncclGetErrorString(r)) + " (" + ncclGetLastError(nullptr) + ")");
}

}  // namespace capscale::exec::cuda

#define CAPSCALE_CUDA_CHECK(call) ::capscale::exec::cuda::check_cuda((call), #call, __FILE__, __LINE__)
/// cuBLAS and cuBLASLt share cublasStatus_t.
#define CAPSCALE_CUBLAS_CHECK(call) ::capscale::exec::cuda::check_cublas((call), #call, __FILE__, __LINE__)
/// For blocking NCCL calls only; operations on the executor's non-blocking communicators may also
/// return ncclInProgress and go through CudaExecutor's enqueue check instead.
#define CAPSCALE_NCCL_CHECK(call) ::capscale::exec::cuda::check_nccl((call), #call, __FILE__, __LINE__)
