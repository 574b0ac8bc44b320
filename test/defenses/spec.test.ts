// parseDefense: the SPEC grammar (positional and key=value parameters,
// composition with "+" or ","), canonical SPECs, and errors that say what
// is wrong and what is accepted; the command-line list of SPECs.
import t from 'tap';
import { defenseSpec, identityDefense } from '../../lib/defenses/defense';
import { joinDefenseList, listDefenses, parseDefense } from '../../lib/defenses/spec';
import { NoiseDefense, RoundDefense, TopkDefense } from '../../lib/defenses/perturb';
import { B4B_DEFAULTS, B4bDefense } from '../../lib/defenses/b4b';
import { ComposedDefense } from '../../lib/defenses/compose';
import { canonicalDefenses } from '../../lib/experiments/defend';

t.test('single defenses, positional or key=value', async (t) => {
  const n = parseDefense('noise:0.05') as NoiseDefense;
  t.ok(n instanceof NoiseDefense);
  t.equal(n.sigma, 0.05);
  t.equal(n.seed, 0);
  t.equal(n.spec, 'noise:0.05');
  const n2 = parseDefense(' noise : sigma=0.05 , seed=3 ') as NoiseDefense;
  t.equal(n2.sigma, 0.05);
  t.equal(n2.seed, 3);
  t.equal(n2.spec, 'noise:0.05,seed=3');
  t.equal((parseDefense('noise:1e+0') as NoiseDefense).sigma, 1, "an exponent's + is not a separator");
  t.equal((parseDefense('topk:32') as TopkDefense).k, 32);
  t.equal((parseDefense('topk:k=8') as TopkDefense).spec, 'topk:8');
  t.equal((parseDefense('round:0') as RoundDefense).decimals, 0);
  const b = parseDefense('b4b') as B4bDefense;
  t.ok(b instanceof B4bDefense);
  t.same({ ...b.config }, { ...B4B_DEFAULTS });
  t.equal(b.spec, 'b4b');
  const b2 = parseDefense('b4b:beta=60,rotate=true,lambda=1e-5') as B4bDefense;
  t.equal(b2.config.beta, 60);
  t.equal(b2.config.rotate, true);
  t.equal(b2.config.lambda, 1e-5);
  t.equal(b2.spec, 'b4b:beta=60,lambda=0.00001,rotate=true', 'canonical: changed parameters in a fixed order');
  t.same(b2.params, { ...B4B_DEFAULTS, beta: 60, lambda: 1e-5, rotate: true });
  t.equal(parseDefense('none'), identityDefense);
  t.equal(defenseSpec(identityDefense), 'none');
  t.same(listDefenses().map((d) => d.name).slice(0, 5), ['none', 'noise', 'topk', 'round', 'b4b']);
});

t.test('composition: "+" or ",", left to right; canonical SPECs parse back to equal defenses', async (t) => {
  const a = parseDefense('topk:32,noise:0.05') as ComposedDefense;
  t.ok(a instanceof ComposedDefense);
  t.same(a.stages.map((s) => s.name), ['topk', 'noise']);
  t.equal(a.spec, 'topk:32+noise:0.05');
  const b = parseDefense('topk:32+noise:0.05');
  t.equal(b.spec, a.spec, '"+" and "," compose alike');
  const c = parseDefense('b4b:beta=60,rotate=true,round:3') as ComposedDefense;
  t.same(c.stages.map((s) => s.spec), ['b4b:beta=60,rotate=true', 'round:3'], 'key=value after a comma continues the stage');
  t.equal(parseDefense('none+topk:4').spec, 'topk:4', '"none" stages are dropped');
  t.equal(parseDefense('none+none'), identityDefense);
  for (const spec of ['noise:0.2,seed=9', 'topk:8+round:2+noise:0.1', 'b4b:alpha=0.5,beta=40,families=3,planes=10,seed=4,rotate=true,center=true', 'round:1']) {
    const d = parseDefense(spec);
    t.equal(parseDefense(d.spec).spec, d.spec, `${spec}: canonical SPEC is a fixed point`);
    t.same(parseDefense(d.spec).params, d.params);
  }
  t.same(canonicalDefenses(['noise:0.050', 'noise:sigma=0.05', 'b4b', 'topk:4,round:1']), ['none', 'noise:0.05', 'b4b', 'topk:4+round:1'], 'canonical, deduplicated, "none" first');
});

t.test('errors name the problem and what is accepted', async (t) => {
  const bad: [string, RegExp][] = [
    ['magic', /unknown defense "magic": available: none, noise, topk, round, b4b/],
    ['noise', /defense "noise" needs sigma/],
    ['noise:', /nothing after ":"/],
    ['noise:-1', /noise": sigma must be a number >= 0, got -1/],
    ['noise:abc', /sigma must be a number >= 0, got "abc"/],
    ['noise:0.1,sigma=0.2', /parameter sigma given twice/],
    ['noise:0.1,seed=1.5', /seed must be an integer/],
    ['noise:0.1,mean=1', /unknown parameter "mean" \(accepted: sigma, seed\)/],
    ['topk:0', /k must be a number >= 1/],
    ['topk:2.5', /k must be an integer/],
    ['round:9', /decimals must be a number >= 0 and <= 8, got 9/],
    ['b4b:5', /"5" must be key=value \(defense "b4b" has no main parameter\)/],
    ['b4b:gamma=1', /unknown parameter "gamma" \(accepted: alpha, beta, lambda, planes, families, seed, rotate, center\)/],
    ['b4b:alpha=1e-7', /alpha must be larger than lambda/],
    ['b4b:beta=120', /beta must be a number > 0 and <= 100/],
    ['b4b:rotate=maybe', /rotate must be true or false/],
    ['topk:4+', /empty defense stage/],
    ['sigma=1', /must follow a defense name/],
    ['none:x=1', /"none" takes no parameters/],
    ['none:3', /"none" takes no parameters/],
    ['noise:0.1+magic', /unknown defense "magic"/],
  ];
  for (const [spec, re] of bad) t.throws(() => parseDefense(spec), re, spec);
  t.throws(() => parseDefense(3 as unknown as string), TypeError);
});

t.test('joinDefenseList: the SPECs of a comma-split command-line list', async (t) => {
  t.same(joinDefenseList(['noise:0.05', 'b4b:beta=60', 'rotate=true', 'topk:32+noise:0.05', 'b4b']), ['noise:0.05', 'b4b:beta=60,rotate=true', 'topk:32+noise:0.05', 'b4b']);
  t.same(joinDefenseList(['noise:sigma=0.1', 'seed=2']), ['noise:sigma=0.1,seed=2']);
  t.throws(() => joinDefenseList(['rotate=true']), /must follow a defense name/);
  t.same(joinDefenseList([]), []);
});
