// Issue #19 in lib/eval: labels are checked against numClasses, options keys
// are checked, and arguments are checked before use.
import t, { type Test } from 'tap';
import { accuracy, agreement, knnAccuracy, linearProbe, probePredict, trainLinearProbe, type Embeddings } from '../../lib/eval/probe';
import { embedDataset } from '../../lib/eval/embed';
import { FidelityEvaluator, meanRowCosine } from '../../lib/eval/fidelity';
import { loadTask } from '../../lib/eval/tasks';
import { Linear } from '../../lib/nn/module';

type Case = [string, () => unknown, ErrorConstructor, RegExp];
function check(t: Test, cases: Case[]): void {
  for (const [what, fn, type, message] of cases) t.throws(fn, { name: type.name, message }, what);
}

const emb = (labels: number[]): Embeddings => ({
  data: Float32Array.from(labels.flatMap((l, i) => [Math.cos(i + l), Math.sin(i * 2 + l)])),
  n: labels.length,
  dim: 2,
  labels: Int32Array.from(labels),
});

t.test('knnAccuracy checks labels against numClasses', async (t) => {
  const good = emb([0, 1, 0, 1]);
  check(t, [
    ['train label 5 with 2 classes', () => knnAccuracy(emb([0, 1, 5, 1]), good, { numClasses: 2 }), RangeError, /train\.labels\[2\] = 5 is outside \[0, 2\) \(numClasses 2\)/],
    ['train label -1', () => knnAccuracy(emb([0, -1]), good, { numClasses: 2 }), RangeError, /train\.labels\[1\] = -1 is outside \[0, 2\)/],
    ['test label 2 with 2 classes', () => knnAccuracy(good, emb([0, 2]), { numClasses: 2 }), RangeError, /test\.labels\[1\] = 2 is outside \[0, 2\)/],
    ['unknown option', () => knnAccuracy(good, good, { numClasses: 2, kk: 3 } as never), TypeError, /options has unknown key "kk" \(did you mean "k"\?\)/],
    ['no options', () => knnAccuracy(good, good, undefined as never), TypeError, /options\.numClasses is required/],
    ['train null', () => knnAccuracy(null as never, good, { numClasses: 2 }), TypeError, /train must be an object, got null/],
    ['dim mismatch', () => knnAccuracy(good, { ...emb([0]), data: new Float32Array(3), dim: 3 }, { numClasses: 2 }), RangeError, /train has dim 2 but test has dim 3/],
  ]);
  t.equal(knnAccuracy(good, good, { numClasses: 2, k: 1 }), 1, 'each point is its own nearest neighbour');
});

t.test('probe functions', async (t) => {
  const good = emb([0, 1, 0, 1]);
  const probe = trainLinearProbe(good, { numClasses: 2, epochs: 2 });
  check(t, [
    ['trainLinearProbe label out of range', () => trainLinearProbe(emb([0, 3]), { numClasses: 2 }), RangeError, /train\.labels\[1\] = 3 is outside \[0, 2\)/],
    ['trainLinearProbe unknown key', () => trainLinearProbe(good, { numClasses: 2, epoch: 3 } as never), TypeError, /options has unknown key "epoch" \(did you mean "epochs"\?\)/],
    ['linearProbe test label out of range', () => linearProbe(good, emb([0, 7]), { numClasses: 2, epochs: 1 }), RangeError, /test\.labels\[1\] = 7 is outside \[0, 2\)/],
    ['probePredict(null)', () => probePredict(null as never, good), TypeError, /probe must be an object, got null/],
    ['probePredict bad weight', () => probePredict({ ...probe, weight: new Float32Array(1) }, good), TypeError, /probe\.weight must be a Float32Array of numClasses \* dim = 4 values/],
    ['probePredict bad stats', () => probePredict({ ...probe, stats: { mean: new Float64Array(2), std: new Float64Array(2) } }, good), RangeError, /probe\.stats\.std\[0\] = 0 is not a positive number/],
    ['accuracy(array)', () => accuracy([0] as never, Int32Array.of(0)), TypeError, /pred must be an Int32Array, got an array/],
    ['agreement(null)', () => agreement(null as never, Int32Array.of(0)), TypeError, /a must be an Int32Array, got null/],
    ['meanRowCosine(NaN n)', () => meanRowCosine(new Float32Array(2), new Float32Array(2), NaN, 2), RangeError, /n must be finite/],
    ['meanRowCosine(array)', () => meanRowCosine([1] as never, new Float32Array(1), 1, 1), TypeError, /a must be a Float32Array/],
    ['embedDataset(null encoder)', () => embedDataset(null as never, null as never), TypeError, /encoder must be a Module, got null/],
    ['embedDataset unknown option', () => embedDataset(new Linear(2, 2), { name: 'd', channels: 1, height: 1, width: 1, numClasses: 2, images: new Uint8Array(1), labels: Int32Array.of(0) }, { bachSize: 1 } as never), TypeError, /options has unknown key "bachSize" \(did you mean "batchSize"\?\)/],
    ['FidelityEvaluator(null target)', () => new FidelityEvaluator(null as never, []), TypeError, /target must be a Module, got null/],
    ['FidelityEvaluator bad task', () => new FidelityEvaluator(new Linear(2, 2), [null as never]), TypeError, /tasks\[0\] must be an object, got null/],
  ]);
  t.equal(probePredict(probe, good).length, 4);
  await t.rejects(loadTask('mnist', { limt: 3 } as never), { name: 'TypeError', message: /options has unknown key "limt" \(did you mean "limit"\?\)/ });
  await t.rejects(loadTask(5 as never), { name: 'TypeError', message: /spec must be a non-empty string \(the task\), got 5/ });
});
