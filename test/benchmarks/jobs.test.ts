// The real-job rows' arithmetic: convolution FLOPs against a hand count, the
// --images option, the extrapolation of a timed slice to the epoch, and the
// reading of a job's result line. Nothing here runs a job or a timing.
import t from 'tap';
import { convShapes, forwardFlopsPerImage, pretrainFlops, probeFlops, simclrStepFlops, stealFlops, trainFlopsPerImage } from '../../benchmarks/flops';
import { extrapolateEpoch, jobFigureSeconds, jobRows, parseEncsecJobOutput, parseImages, pretrainArgv, FULL_JOB_SIZES } from '../../benchmarks/jobs';
import { buildSuite, FULL_SIZES } from '../../benchmarks/suite';
import { convGflops, convPercentOfPeak } from '../../benchmarks/results';

t.test('cnn-small convolution FLOPs, by hand', async (t) => {
  // conv1 1->32 at 28x28: 2*32*28*28*1*9; conv2 32->64 at 28x28; conv3 64->128 at 14x14; conv4 128->128 at 7x7.
  const c1 = 2 * 32 * 784 * 1 * 9; // 451,584
  const c2 = 2 * 64 * 784 * 32 * 9; // 28,901,376
  const c3 = 2 * 128 * 196 * 64 * 9; // 28,901,376
  const c4 = 2 * 128 * 49 * 128 * 9; // 14,450,688
  t.equal(c1 + c2 + c3 + c4, 72705024);
  t.equal(forwardFlopsPerImage('cnn-small'), 72705024);
  // Training: forward + d weight everywhere + d input except at conv1.
  t.equal(trainFlopsPerImage('cnn-small'), 3 * 72705024 - c1);
  t.equal(simclrStepFlops('cnn-small', 256), 2 * 256 * (3 * 72705024 - c1));
  t.equal(pretrainFlops('cnn-small', 60000), 2 * 60000 * (3 * 72705024 - c1));
  t.equal(probeFlops('cnn-small', 60000, 10000), 70000 * 72705024);
  const train = 3 * 72705024 - c1;
  t.equal(stealFlops('cnn-small', 'mse', 3000, 2), 3000 * 72705024 + 2 * 3000 * train);
  t.equal(stealFlops('cnn-small', 'stolenencoder', 3000, 2), 3000 * 72705024 + 2 * 3000 * 2 * train, 'clean pass + one view');
});

t.test('resnet18-cifar layers: stem, 16 block convs, 3 shortcuts', async (t) => {
  const s = convShapes('resnet18-cifar');
  t.equal(s.length, 1 + 16 + 3);
  t.same(s.filter((l) => l.K === 1).map((l) => [l.C, l.OC, l.out]), [[64, 128, 16], [128, 256, 8], [256, 512, 4]]);
  // layer1: four 64->64 3x3 at 32x32; the stem 3->64 at 32x32.
  t.equal(s[0].C * s[0].OC * s[0].out, 3 * 64 * 32);
  t.ok(forwardFlopsPerImage('resnet18-cifar') > 1.1e9 && forwardFlopsPerImage('resnet18-cifar') < 1.14e9, 'about 0.56 G multiply-adds (1.12 GFLOP) per image, as usually quoted');
});

t.test('--images: a count rounded to whole batches, or a fraction of the epoch', async (t) => {
  t.equal(parseImages('60000'), 60000);
  t.equal(parseImages('100000'), 60000, 'capped at the epoch');
  t.equal(parseImages('15000'), 14848, 'rounded down to 58 batches of 256');
  t.equal(parseImages('0.25'), 14848);
  t.equal(parseImages('1.0'), 60000);
  t.equal(parseImages('10'), 256, 'at least one batch');
  for (const bad of ['0', '-3', 'abc', '1.5', '']) t.throws(() => parseImages(bad), /--images must be/);
});

t.test('a slice extrapolates: the fixed part once, the loop scaled', async (t) => {
  // 12.5 s job of which 10 s loop over 6000 images: 2.5 s fixed + 10 s x 10.
  t.equal(extrapolateEpoch(12.5, 10, 6000, 60000), 102.5);
  t.equal(extrapolateEpoch(12.5, 10, 60000, 60000), 12.5, 'the whole epoch is not scaled');
  t.throws(() => extrapolateEpoch(5, 10, 6000, 60000), /inconsistent job timing/);
  const [pre] = jobRows({ ...FULL_JOB_SIZES, pretrainImages: 6144 });
  t.match(pre.shape, /timed on 6144 images, extrapolated/);
  t.equal(jobFigureSeconds(pre, { images: 6144, jobSeconds: 12.5, loopSeconds: 10 }), 12.5 + 10 * (60000 / 6144 - 1));
  const steal = jobRows(FULL_JOB_SIZES)[1];
  t.equal(jobFigureSeconds(steal, { images: 9000, jobSeconds: 40, loopSeconds: 30 }), 40, 'other jobs: the whole job');
});

t.test('job rows: ids, work and FLOPs; the CLI line they run', async (t) => {
  const rows = buildSuite(FULL_SIZES).filter((r) => r.group === 'job');
  t.same(rows.map((r) => r.id), [
    'job.pretrain-epoch.cnn-small',
    'job.steal.mse.q3000',
    'job.steal.cosine.q3000',
    'job.steal.stolenencoder.q3000',
    'job.steal.contsteal.q3000',
    'job.probe.cnn-small',
  ]);
  t.equal(rows[1].work, 3000 * 3, 'Q queries + Q per epoch, 2 epochs');
  t.equal(rows[5].work, 70000);
  t.ok(rows.every((r) => r.convFlops! > 0));
  const e2e = buildSuite(FULL_SIZES).find((r) => r.id === 'e2e.simclr-step.cnn-small')!;
  t.equal(e2e.convFlops, simclrStepFlops('cnn-small', 256));
  const argv = pretrainArgv({ ...rows[0], params: { ...rows[0].params, images: 2560 } }, '/tmp/x');
  t.same(argv.slice(0, 3), ['pretrain', '--data', 'fashion-mnist']);
  t.ok(argv.includes('--limit') && argv[argv.indexOf('--limit') + 1] === '2560');
  t.notOk(pretrainArgv(rows[0], '/tmp/x').includes('--limit'), 'the whole epoch: no --limit');
  // % of peak: 100 GFLOP in 2 s = 50 GFLOP/s = 25% of a 200 GFLOP/s peak.
  const o = { medianMs: 2000, minMs: 2000, maxMs: 2000, iters: 1, samplesMs: [2000], value: 1 };
  t.equal(convGflops({ convFlops: 100e9 }, o), 50);
  t.equal(convPercentOfPeak({ convFlops: 100e9 }, o, 200), 25);
  t.equal(convPercentOfPeak({ convFlops: 100e9 }, o, null), null);
});

t.test("encsec's result lines are read, bad ones are clear errors", async (t) => {
  const [pre, steal] = jobRows({ ...FULL_JOB_SIZES, pretrainImages: 512 });
  const cli = `noise\n${JSON.stringify({ wallSeconds: 11, history: [{ epoch: 1, seconds: 10, loss: 5 }] })}\n`;
  t.same(parseEncsecJobOutput(pre, cli), { images: 512, jobSeconds: 11, loopSeconds: 10, phases: { loop: 10 } });
  t.throws(() => parseEncsecJobOutput(pre, 'nothing'), /no JSON result line/);
  t.throws(() => parseEncsecJobOutput(pre, '{"wallSeconds": 3}'), /unexpected pretrain result/);
  t.same(parseEncsecJobOutput(steal, '{"images": 9000, "jobSeconds": 4, "loopSeconds": 3}'), { images: 9000, jobSeconds: 4, loopSeconds: 3 });
  t.throws(() => parseEncsecJobOutput(steal, '{"images": 9000}'), /not a job report/);
});
