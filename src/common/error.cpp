// Host name lookup for error messages (a rank's failure must name rank and host).
#include "common/error.hpp"

#include <unistd.h>

namespace capscale {

const std::string& host_name() {
  static const std::string name = [] {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return std::string("unknown-host");
    return std::string(buf);
  }();
  return name;
}

}  // namespace capscale
