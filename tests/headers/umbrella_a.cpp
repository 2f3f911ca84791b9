// The umbrella in an OpenMP translation unit; linked with every single-header TU (ODR check).
#include <sparsenm/sparsenm.hpp>
int header_umbrella_a() { return sparsenm::thread_count() > 0 ? 1 : 0; }
