// The API fuzzer, a short seeded run in the suite: every exported function,
// class and static method of lib/index.ts (and the methods of a few
// instances) called with hostile arguments in a child process. No call may
// crash the process, hang, or fail with a raw engine error (one that names
// none of our arguments: "Cannot read properties of undefined", "is not a
// function", "Do not know how to serialize a BigInt", ...), in any folder.
// Longer runs: scripts/fuzz.ts.
import t from 'tap';
import { runFuzz } from './runner';

t.test('seeded fuzz run over the whole public API', async (t) => {
  const calls = Number(process.env.ENCSEC_FUZZ_CALLS ?? 720);
  const seed = Number(process.env.ENCSEC_FUZZ_SEED ?? 19);
  const report = await runFuzz({ calls, seed, timeoutMs: 5000 });
  const c = report.counts;
  t.comment(`fuzz: ${report.calls} calls over ${report.targetsCalled}/${report.targets} targets in ${report.seconds.toFixed(1)} s: ok ${c.ok}, clean errors ${c.clean}, raw engine errors ${c.raw}, hangs ${c.hang}, crashes ${c.crash}`);
  t.ok(report.targets > 150, `the exports were enumerated (${report.targets} targets)`);
  t.equal(report.targetsCalled, Math.min(report.targets, calls), 'every target was called');
  t.equal(c.ok + c.clean + c.raw + c.hang + c.crash >= calls, true, 'every call has an outcome');
  const show = (k: string) =>
    report.problems.filter((p) => p.outcome.kind === k).map((p) => `${p.target}(${p.args.join(', ')}): ${p.outcome.detail}${p.outcome.where ? ` (${p.outcome.where})` : ''}`);
  t.same(show('crash'), [], 'no call crashed the process');
  t.same(show('hang'), [], 'no call hung');
  t.same(show('raw'), [], 'no raw engine error');
  t.equal(c.raw + c.hang + c.crash, 0, 'raw engine errors + hangs + crashes = 0');
});

t.test('the fuzzer itself: each kind of outcome is recognised (crash and hang in the child, the run goes on)', async (t) => {
  const report = await runFuzz({ calls: 7, seed: 1, timeoutMs: 1500, env: { ENCSEC_FUZZ_SELFTEST: '1' } });
  const kinds = Object.fromEntries(report.problems.map((p) => [p.target, p.outcome.kind]));
  t.same(report.counts, { ok: 2, clean: 1, raw: 2, hang: 2, crash: 1 }, 'ok, clean, raw (sync + escaped), hang (sync + promise), crash');
  t.match(kinds, { 'selftest.raw': 'raw', 'selftest.hang': 'hang', 'selftest.crash': 'crash', 'selftest.asyncHang': 'hang' });
  t.match(report.problems.find((p) => p.target === 'selftest.crash')?.outcome.detail, /SIGSEGV/);
  t.match(report.problems.find((p) => p.target === 'selftest.raw')?.outcome.detail, /Cannot read properties of null/);
  t.ok(report.problems.some((p) => /escaped asynchronously: TypeError: escaped/.test(p.outcome.detail ?? '')), 'an error thrown from a timer is caught and counted');
});
