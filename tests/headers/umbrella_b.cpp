// A second umbrella TU: any non-inline function defined in a header is now defined twice.
// (Both umbrella TUs build with OpenMP and EIGEN_USE_BLAS; the single-header TUs with neither.)
#include <sparsenm/sparsenm.hpp>
int header_umbrella_b() { return 1; }
