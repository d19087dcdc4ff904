// The control for upward_include.cpp: the model module including a config header (config comes
// before model) builds, so the probe's failure is the include rule's, not the probe's setup.
#include "config/model_config.hpp"

int capscale_structure_probe() { return 0; }
