// The baseline rows of every stealing report: what an attacker gets without
// stealing anything. A stolen copy is only a copy where it beats them.
//   raw pixels           the normalised pixels as features (no encoder)
//   random-init encoder  the target's architecture, untrained (seed: the
//                        attacks' seed + 1, so that it differs from the next row)
//   untrained surrogate  exactly the surrogate every attack of the grid starts
//                        from (its architecture and seed), before any query
// Each is measured with the grid's FidelityEvaluator: the same linear-probe
// protocol, agreement and mean cosine against the target as the copies.
import type { FidelityEvaluator, FidelityReport } from '../eval/fidelity';
import { pixelFeatures } from '../eval/embed';
import { Encoder, type Architecture } from '../nn/encoders';
import { createSurrogate } from '../attacks/surrogate';
import type { BaselineRow } from '../report/steal';

export interface BaselineSettings {
  targetArch: Architecture;
  inChannels: number;
  /** The target's embedding size (the surrogate's adapter maps to it). */
  targetDim: number;
  /** The attacks' surrogate architecture and seed. */
  surrogateArch: Architecture;
  seed: number;
}

function row(name: BaselineRow['name'], description: string, f: FidelityReport): BaselineRow {
  return { name, description, stolenAccuracy: f.stolenAccuracy, agreement: f.agreement, meanCosine: f.meanCosine, evalSeconds: f.evalSeconds };
}

/** Measures the three baseline rows against the evaluator's target. */
export function measureBaselines(evaluator: FidelityEvaluator, s: BaselineSettings): BaselineRow[] {
  const rows: BaselineRow[] = [row('raw pixels', 'normalised pixels as features, no encoder', evaluator.evaluateFeatures(pixelFeatures))];
  const randomSeed = s.seed + 1;
  const random = new Encoder({ arch: s.targetArch, inChannels: s.inChannels, seed: randomSeed }).eval();
  try {
    rows.push(row('random-init encoder', `${s.targetArch}, untrained (seed ${randomSeed})`, evaluator.evaluate(random)));
  } finally {
    random.dispose();
  }
  const untrained = createSurrogate({ arch: s.surrogateArch, inChannels: s.inChannels, outDim: s.targetDim, seed: s.seed }).eval();
  try {
    rows.push(row('untrained surrogate', `the attacks' starting point: ${s.surrogateArch}, seed ${s.seed}, 0 epochs`, evaluator.evaluate(untrained)));
  } finally {
    untrained.dispose();
  }
  return rows;
}
