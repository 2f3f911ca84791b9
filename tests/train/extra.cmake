# SPDX-License-Identifier: Apache-2.0
# train/idx.hpp reads gzip through zlib, so the train tests link it.
find_package(ZLIB REQUIRED)
target_link_libraries(test_train PRIVATE ZLIB::ZLIB)
