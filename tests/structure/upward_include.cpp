// Deliberately wrong: the model module including a plan header (plan comes after model in the
// pipeline). tests/CMakeLists.txt builds this in the model module's context and expects the
// compiler to fail to find the header; it is never part of a normal build.
#include "plan/plan.hpp"

int capscale_structure_probe() { return 0; }
