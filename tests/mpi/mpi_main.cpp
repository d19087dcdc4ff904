// Main of the MPI test binary: one MPI session for all tests (an RAII environment, as HighFive's
// tests/unit do), every rank runs every test, rank 0 prints.
#include <gtest/gtest.h>
#include <mpi.h>

#include "mpi/mpi_context.hpp"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  capscale::mpi::Session session(&argc, &argv);
  if (session.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS();
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return failed;
}
