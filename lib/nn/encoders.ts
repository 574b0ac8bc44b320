// The encoder architectures and SimCLR's projection head.
//   cnn-small (1x28x28): conv3x3(1->32)+BN+ReLU; conv3x3(32->64)+BN+ReLU+maxpool2;
//     conv3x3(64->128)+BN+ReLU+maxpool2; conv3x3(128->128)+BN+ReLU; global
//     average pool -> 128-d. All convs padding 1.
//   resnet18-cifar (3x32x32 or 1 channel): the CIFAR ResNet-18 (3x3 stem, no
//     max-pool, BasicBlocks [2,2,2,2] with 64,128,256,512 channels) -> 512-d.
import { Tensor } from '../core/tensor';
import * as ops from '../core/ops';
import { checkInt, checkOneOf, checkOptions, checkSeed, describe } from '../core/validate';
import { BatchNorm2d, Conv2d, ConvBnReLU, GlobalAvgPool, Linear, MaxPool2d, Module, PlanBuilder, ReLU, Sequential, checkPlanArgs } from './module';

export const ARCHITECTURES = ['cnn-small', 'resnet18-cifar'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

export interface EncoderConfig {
  arch: Architecture;
  /** Input channels (1 for Fashion-MNIST/MNIST, 3 for CIFAR-10). */
  inChannels: number;
  seed: number;
}

/** Allocates consecutive init streams so every layer of a model gets its own. */
class StreamCounter {
  private n = 0;
  next(): number {
    return this.n++;
  }
}

/** ResNet BasicBlock: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)). */
export class BasicBlock extends Module {
  readonly cbr1: ConvBnReLU;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly shortcutConv: Conv2d | null;
  readonly shortcutBn: BatchNorm2d | null;
  constructor(inC: number, outC: number, stride: number, seed: number, streams: StreamCounter) {
    super();
    checkInt(stride, 'stride', { min: 1, max: 64 });
    checkSeed(seed, 'seed');
    if (streams === null || typeof streams !== 'object' || typeof (streams as { next?: unknown }).next !== 'function') {
      throw new TypeError(`streams must be a stream counter { next(): number } (BasicBlock is built by Encoder), got ${describe(streams)}`);
    }
    this.cbr1 = this.registerModule('cbr1', new ConvBnReLU(inC, outC, 3, { stride, padding: 1, seed, stream: streams.next() }));
    this.conv2 = this.registerModule('conv2', new Conv2d(outC, outC, 3, { padding: 1, bias: false, seed, stream: streams.next() }));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(outC));
    if (stride !== 1 || inC !== outC) {
      this.shortcutConv = this.registerModule('shortcut_conv', new Conv2d(inC, outC, 1, { stride, bias: false, seed, stream: streams.next() }));
      this.shortcutBn = this.registerModule('shortcut_bn', new BatchNorm2d(outC));
    } else {
      this.shortcutConv = null;
      this.shortcutBn = null;
    }
  }
  forward(x: Tensor): Tensor {
    const h = this.bn2.forward(this.conv2.forward(this.cbr1.forward(x)));
    const s = this.shortcutConv ? this.shortcutBn!.forward(this.shortcutConv.forward(x)) : x;
    return ops.relu(ops.add(h, s));
  }
  plan(b: PlanBuilder, input: number): number {
    checkPlanArgs(b, input);
    const h = this.bn2.plan(b, this.conv2.plan(b, this.cbr1.plan(b, input)));
    const s = this.shortcutConv ? this.shortcutBn!.plan(b, this.shortcutConv.plan(b, input)) : input;
    return b.add({ op: 'relu' }, b.addSum(h, s));
  }
}

/** An encoder: the backbone that maps images to embeddings, with its configuration. */
export class Encoder extends Module {
  readonly net: Sequential;
  constructor(readonly config: EncoderConfig) {
    super();
    if (config === undefined) throw new TypeError('config must be an object { arch, inChannels, seed }, got undefined');
    checkOptions(config, 'config', ['arch', 'inChannels', 'seed']);
    const arch = checkOneOf(config.arch, 'config.arch', ARCHITECTURES);
    const inC = checkInt(config.inChannels, 'config.inChannels', { min: 1, max: 4 });
    const seed = checkSeed(config.seed, 'config.seed');
    const st = new StreamCounter();
    if (arch === 'cnn-small') {
      this.net = new Sequential(
        new ConvBnReLU(inC, 32, 3, { padding: 1, seed, stream: st.next() }),
        new ConvBnReLU(32, 64, 3, { padding: 1, seed, stream: st.next() }),
        new MaxPool2d(2),
        new ConvBnReLU(64, 128, 3, { padding: 1, seed, stream: st.next() }),
        new MaxPool2d(2),
        new ConvBnReLU(128, 128, 3, { padding: 1, seed, stream: st.next() }),
        new GlobalAvgPool(),
      );
    } else {
      const layers: Module[] = [new ConvBnReLU(inC, 64, 3, { padding: 1, seed, stream: st.next() })];
      let c = 64;
      for (const [outC, stride] of [
        [64, 1],
        [128, 2],
        [256, 2],
        [512, 2],
      ] as const) {
        layers.push(new BasicBlock(c, outC, stride, seed, st), new BasicBlock(outC, outC, 1, seed, st));
        c = outC;
      }
      layers.push(new GlobalAvgPool());
      this.net = new Sequential(...layers);
    }
    this.registerModule('net', this.net);
  }

  /** Embedding size: 128 for cnn-small, 512 for resnet18-cifar. */
  get dim(): number {
    return this.config.arch === 'cnn-small' ? 128 : 512;
  }

  forward(x: Tensor): Tensor {
    return this.net.forward(x);
  }

  plan(b: PlanBuilder, input: number): number {
    checkPlanArgs(b, input);
    return this.net.plan(b, input);
  }
}

/** SimCLR projection head: Linear(d, d) + ReLU + Linear(d, out) (64 for cnn-small, 128 for resnet18). */
export class ProjectionHead extends Module {
  readonly net: Sequential;
  constructor(readonly inDim: number, readonly outDim: number, seed: number) {
    super();
    checkInt(inDim, 'inDim', { min: 1, max: 65536 });
    checkInt(outDim, 'outDim', { min: 1, max: 65536 });
    checkSeed(seed, 'seed');
    this.net = this.registerModule(
      'net',
      new Sequential(new Linear(inDim, inDim, { seed, stream: 1000 }), new ReLU(), new Linear(inDim, outDim, { seed, stream: 1001 })),
    );
  }
  forward(x: Tensor): Tensor {
    return this.net.forward(x);
  }
  plan(b: PlanBuilder, input: number): number {
    checkPlanArgs(b, input);
    return this.net.plan(b, input);
  }
}

export function projectionDim(arch: Architecture): number {
  checkOneOf(arch, 'arch', ARCHITECTURES);
  return arch === 'cnn-small' ? 64 : 128;
}

export function createEncoder(arch: Architecture, opts: { inChannels?: number; seed?: number } = {}): Encoder {
  checkOneOf(arch, 'arch', ARCHITECTURES);
  checkOptions(opts, 'options', ['inChannels', 'seed']);
  return new Encoder({ arch, inChannels: opts.inChannels ?? (arch === 'cnn-small' ? 1 : 3), seed: opts.seed ?? 0 });
}
