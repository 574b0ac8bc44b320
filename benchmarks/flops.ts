// Convolution FLOPs of the encoders' work: per image, per training step and
// per real job, so that every end-to-end and job row can say how far it is
// from the machine's measured fp32 peak.
//
// Counting rule (the same as the kernel rows): a convolution's forward is
// 2·OC·OH·OW·C·K² FLOPs per image (a multiply and an add per weight tap);
// its backward computes d weight (one forward's worth) and d input (another),
// except at the first layer, whose input is the image: nothing needs its
// gradient, so only d weight is counted there. Batch norm, ReLU, pooling, the
// projection head, the loss and Adam are not counted: they are memory-bound
// extras next to the convolutions (the linear layers of cnn-small's head are
// under 0.1% of its convolution FLOPs).
import type { Architecture } from '../lib/nn/encoders';
import type { StealMethod } from '../lib/attacks/losses';

export interface ConvShape {
  name: string;
  C: number;
  OC: number;
  /** Output side (square), after the stride. */
  out: number;
  K: number;
}

/** Every convolution of an encoder, input to output, with its output size (lib/nn/encoders.ts). */
export function convShapes(arch: Architecture): ConvShape[] {
  if (arch === 'cnn-small') {
    return [
      { name: 'conv1', C: 1, OC: 32, out: 28, K: 3 },
      { name: 'conv2', C: 32, OC: 64, out: 28, K: 3 },
      // max-pool 2
      { name: 'conv3', C: 64, OC: 128, out: 14, K: 3 },
      // max-pool 2
      { name: 'conv4', C: 128, OC: 128, out: 7, K: 3 },
    ];
  }
  // resnet18-cifar: 3x3 stem, BasicBlocks [2,2,2,2] at 64/128/256/512 channels, 1x1 shortcuts where the shape changes.
  const s: ConvShape[] = [{ name: 'stem', C: 3, OC: 64, out: 32, K: 3 }];
  let c = 64;
  let side = 32;
  for (const [oc, stride, stage] of [
    [64, 1, 1],
    [128, 2, 2],
    [256, 2, 3],
    [512, 2, 4],
  ] as const) {
    const out = side / stride;
    s.push({ name: `layer${stage}.0.conv1`, C: c, OC: oc, out, K: 3 });
    s.push({ name: `layer${stage}.0.conv2`, C: oc, OC: oc, out, K: 3 });
    if (stride !== 1 || c !== oc) s.push({ name: `layer${stage}.0.shortcut`, C: c, OC: oc, out, K: 1 });
    s.push({ name: `layer${stage}.1.conv1`, C: oc, OC: oc, out, K: 3 });
    s.push({ name: `layer${stage}.1.conv2`, C: oc, OC: oc, out, K: 3 });
    c = oc;
    side = out;
  }
  return s;
}

/** Forward FLOPs of one convolution for one image. */
export function convForwardFlops(l: ConvShape): number {
  return 2 * l.OC * l.out * l.out * l.C * l.K * l.K;
}

/** Convolution FLOPs of one image through the encoder, forward only (inference). */
export function forwardFlopsPerImage(arch: Architecture): number {
  return convShapes(arch).reduce((s, l) => s + convForwardFlops(l), 0);
}

/**
 * Convolution FLOPs of one image in a training step: forward, d weight, and d
 * input for every layer but the first (see the counting rule above).
 */
export function trainFlopsPerImage(arch: Architecture): number {
  const layers = convShapes(arch);
  const first = convForwardFlops(layers[0]);
  return 3 * forwardFlopsPerImage(arch) - first;
}

/** One SimCLR step on a batch of `batch` images (two views of each). */
export function simclrStepFlops(arch: Architecture, batch: number): number {
  return 2 * batch * trainFlopsPerImage(arch);
}

/** One pre-training epoch over `images` images: a SimCLR step's work per image. */
export function pretrainFlops(arch: Architecture, images: number): number {
  return 2 * images * trainFlopsPerImage(arch);
}

/** Training passes per queried image and epoch of a stealing method (stolenencoder: the clean image and k views). */
export function stealPasses(method: StealMethod, k = 1): number {
  return method === 'stolenencoder' ? 1 + k : 1;
}

/**
 * A steal of `budget` queries trained for `epochs` epochs: the target embeds
 * the queried images once (inference), the surrogate trains on them.
 */
export function stealFlops(arch: Architecture, method: StealMethod, budget: number, epochs: number, k = 1): number {
  return budget * forwardFlopsPerImage(arch) + epochs * budget * stealPasses(method, k) * trainFlopsPerImage(arch);
}

/** The linear-probe evaluation: embeddings of TRAIN and TEST (the probe's own products are not counted). */
export function probeFlops(arch: Architecture, trainImages: number, testImages: number): number {
  return (trainImages + testImages) * forwardFlopsPerImage(arch);
}
