// usfast: everything public in one include.
#pragma once
#include "usfast/core.hpp"
#include "usfast/bmode.hpp"
#include "usfast/scan.hpp"
#include "usfast/speckle.hpp"
#include "usfast/denoise.hpp"
#include "usfast/needle.hpp"
