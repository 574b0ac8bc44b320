// The calls the API fuzzer found hanging outside lib/core, nn, data, io and
// eval, each run in a child process with a deadline (test/fuzz/deadline.ts):
// a regression fails here instead of hanging the suite. Each must now fail at
// once with a TypeError or RangeError that names the argument.
//   readServiceState(1), fileSha256(1): a number was taken as a file
//     descriptor (1 is stdout, a pipe here: the read never ended);
//   poisonsPerTarget(1e39, 2**31): an array of 2^31 entries was built;
//   clipGroups('/proc/self/x/y.st', -1e39), clipGroups(idx, 0): the loop over
//     idx never advanced.
import t from 'tap';
import { runWithDeadline } from './deadline';

const cases: { what: string; call: string; name: string; message: RegExp }[] = [
  { what: 'readServiceState(1)', call: "lib('lib/service/state').readServiceState(1)", name: 'TypeError', message: /^file must be a non-empty path, got 1$/ },
  { what: 'fileSha256(1)', call: "lib('lib/experiments/setup').fileSha256(1)", name: 'TypeError', message: /^file must be a non-empty path, got 1$/ },
  { what: 'poisonsPerTarget(1e39, 2**31)', call: "lib('lib/attacks/poison/construct').poisonsPerTarget(1e39, 2 ** 31)", name: 'RangeError', message: /^count must be <= 9007199254740991, got 1e\+39$/ },
  { what: 'poisonsPerTarget(5, 2**31)', call: "lib('lib/attacks/poison/construct').poisonsPerTarget(5, 2 ** 31)", name: 'RangeError', message: /^targets must be <= 1000000, got 2147483648$/ },
  { what: "clipGroups('/proc/self/x/y.st', -1e39)", call: "lib('lib/defenses/poison/training').clipGroups('/proc/self/x/y.st', -1e39)", name: 'TypeError', message: /^idx must be an Int32Array, got a string$/ },
  { what: 'clipGroups(idx, 0)', call: "lib('lib/defenses/poison/training').clipGroups(Int32Array.of(1, 2, 3), 0)", name: 'RangeError', message: /^size must be >= 2, got 0$/ },
  { what: 'clipGroups(idx, NaN)', call: "lib('lib/defenses/poison/training').clipGroups(Int32Array.of(1, 2, 3), NaN)", name: 'RangeError', message: /^size must be finite, got NaN$/ },
];

for (const c of cases) {
  t.test(`${c.what} returns an error at once`, async (t) => {
    // Loaded before ready(): the clock covers the call only.
    const mod = /^lib\('[^']+'\)/.exec(c.call)![0];
    const body = `${mod}; ready(); try { ${c.call}; done({ returned: true }); } catch (e) { done({ threw: { name: e.name, message: e.message } }); }`;
    const r = await runWithDeadline(body, 5000);
    t.notOk(r.timedOut, `no hang (${r.elapsedMs} ms)`);
    const v = r.value as { threw?: { name: string; message: string } } | undefined;
    t.equal(v?.threw?.name, c.name, `a ${c.name}: ${JSON.stringify(v)} ${r.stderr.slice(0, 500)}`);
    t.match(v?.threw?.message ?? '', c.message, 'naming the argument');
    t.ok(r.elapsedMs >= 0 && r.elapsedMs < 1000, `within a second (${r.elapsedMs} ms)`);
  });
}
