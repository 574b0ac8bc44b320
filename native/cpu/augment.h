// Image conversion and SimCLR data augmentation on the CPU.
//
// Input: a dataset of N uint8 images stored as [N, C, H, W] (C = 1 or 3,
// pixel values 0..255), and a batch of B indices into it. Output: the float
// batch [B, C, OH, OW], each pixel scaled to [0, 1] and then normalised as
// (v - mean) / std (torchvision's ToTensor + Normalize).
//
// All randomness is drawn by the caller (lib/data/augment.ts): the kernels get
// one record of AUG_PARAMS floats per image and are pure functions of it, so
// a batch is reproducible from its seed whatever the thread layout.
#pragma once

#include <cstdint>

#include "cpu/kernels.h"
#include "cpu/naive.h"

namespace encsec {

// Layout of one image's augmentation record (floats; integers are exact in a
// float below 2^24).
enum AugParam : int {
  AUG_TOP = 0,          // crop box, in input pixels: 0 <= top, top + height <= H
  AUG_LEFT = 1,         //                            0 <= left, left + width <= W
  AUG_HEIGHT = 2,       // >= 1
  AUG_WIDTH = 3,        // >= 1
  AUG_FLIP = 4,         // 1: horizontal flip of the resized crop, 0: none
  AUG_BRIGHTNESS = 5,   // factor >= 0; 1 leaves the image unchanged (op skipped)
  AUG_CONTRAST = 6,     // factor >= 0; 1 = unchanged (skipped)
  AUG_SATURATION = 7,   // factor >= 0; 1 = unchanged (skipped); colour images only
  AUG_HUE = 8,          // shift in [-0.5, 0.5] of the hue circle; 0 = unchanged (skipped); colour only
  AUG_ORDER0 = 9,       // AUG_ORDER0..3: the jitter ops in the order they are applied, a
  AUG_ORDER1 = 10,      // permutation of 0 = brightness, 1 = contrast, 2 = saturation, 3 = hue
  AUG_ORDER2 = 11,      // (torchvision's ColorJitter draws one per image)
  AUG_ORDER3 = 12,
  AUG_GRAYSCALE = 13,   // 1: convert to grayscale after the jitter (colour images only)
  AUG_PARAMS = 14
};

// The kernels, declared from the op list (native/ops.def) in cpu/kernels.h,
// with their naive twins (naive_augment.cpp: the same results, computed pixel
// by pixel from the formulas below in double precision, serially):
//
// images_to_tensor(out, images, indices, B, C, H, W, mean, std):
//   out[b, c, h, w] = (images[indices[b], c, h, w] / 255 - mean) / std.
//   indices must be in [0, N). Parallel over the batch.
//
// augment_forward(out, images, indices, params, B, C, H, W, OH, OW, mean, std):
// one augmented view per index, in this order (SimCLR's pipeline):
//  1. crop the box (top, left, height, width) and resize it to OH x OW with
//     bilinear interpolation, PyTorch's F.interpolate(mode='bilinear',
//     align_corners=False) on the cropped image: source coordinate
//     (o + 0.5) * in / out - 0.5, clamped below at 0, neighbours clamped to the
//     crop's last row/column (no antialiasing when shrinking);
//  2. horizontal flip when AUG_FLIP is 1;
//  3. colour jitter with torchvision's ColorJitter semantics on values in
//     [0, 1], the four ops in the record's order, each result clamped to [0, 1]:
//     brightness v *= f; contrast v = f v + (1 - f) mean(gray(image));
//     saturation v = f v + (1 - f) gray(pixel); hue: RGB -> HSV, h = (h + s) mod 1,
//     HSV -> RGB (torchvision's _rgb2hsv / _hsv2rgb); gray = 0.2989 R + 0.587 G + 0.114 B.
//     One-channel images take brightness and contrast only (torchvision leaves
//     them unchanged under saturation and hue);
//  4. grayscale (every channel = gray(pixel)) when AUG_GRAYSCALE is 1 and C == 3;
//  5. normalisation (v - mean) / std.
// params: [B, AUG_PARAMS], validated by the caller (boxes inside the image,
// order a permutation). Parallel over the batch; each image is independent.

}  // namespace encsec
