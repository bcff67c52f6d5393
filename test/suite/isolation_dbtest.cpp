// Placeholder: this suite file is being written.
#include <gtest/gtest.h>
