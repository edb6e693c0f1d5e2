// A shared object that claims another plugin ABI version: the registry must refuse it.
#include <cstdint>

extern "C" uint32_t quiver_plugin_abi_version() { return 999; }
extern "C" const char* quiver_plugin_names() { return "wrong_abi"; }
extern "C" void* quiver_plugin_create(const char*) { return nullptr; }
