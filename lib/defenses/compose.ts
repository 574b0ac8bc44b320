// Defenses in sequence: "topk:32+noise:0.05" (or "topk:32,noise:0.05")
// answers noise(topk(x)): each stage sees the previous stage's output, left
// to right. Each stage keeps its own per-client state.
import type { Tensor } from '../core/tensor';
import type { Defense } from './defense';
import { stateError, stateObject } from './common';

export class ComposedDefense implements Defense {
  readonly name: string;
  readonly stages: readonly Defense[];
  readonly params: Readonly<Record<string, string>>;
  readonly spec: string;

  constructor(stages: readonly Defense[]) {
    if (!Array.isArray(stages) || stages.length < 2) throw new TypeError('a composed defense needs at least two stages');
    for (const [i, s] of stages.entries()) {
      if (s === null || typeof s !== 'object' || typeof s.apply !== 'function' || typeof s.name !== 'string') throw new TypeError(`stage ${i} must be a Defense`);
    }
    this.stages = Object.freeze([...stages]);
    this.name = stages.map((s) => s.name).join('+');
    this.spec = stages.map((s) => s.spec ?? s.name).join('+');
    this.params = Object.freeze({ stages: this.spec });
  }

  get needsCalibration(): boolean {
    return this.stages.some((s) => s.needsCalibration === true);
  }

  /** Every stage that calibrates sees the encoder's raw embeddings (running the earlier stages would touch their per-client state). */
  calibrate(embeddings: Tensor): void {
    for (const s of this.stages) s.calibrate?.(embeddings);
  }

  apply(clientId: string, embeddings: Tensor, queryImages?: Tensor): Tensor {
    let cur = embeddings;
    for (const stage of this.stages) {
      let next: Tensor;
      try {
        next = stage.apply(clientId, cur, queryImages);
      } catch (e) {
        if (cur !== embeddings) cur.dispose();
        throw e;
      }
      // An intermediate result belongs to us; the caller's input does not.
      if (next !== cur && cur !== embeddings) cur.dispose();
      cur = next;
    }
    return cur;
  }

  /** Each stage's statistics, keyed "<stage index>.<stage name>.<stat>" when the names repeat, else "<stage name>.<stat>". */
  clientStats(clientId: string): Record<string, number> {
    const out: Record<string, number> = {};
    const names = this.stages.map((s) => s.name);
    this.stages.forEach((s, i) => {
      if (!s.clientStats) return;
      const prefix = names.indexOf(s.name) !== names.lastIndexOf(s.name) ? `${i}.${s.name}` : s.name;
      for (const [k, v] of Object.entries(s.clientStats(clientId))) out[`${prefix}.${k}`] = v;
    });
    return out;
  }

  exportState(): { stages: unknown[] } {
    return { stages: this.stages.map((s) => (s.exportState ? s.exportState() : null)) };
  }

  importState(state: unknown): void {
    const where = `${this.spec} state`;
    const o = stateObject(state, where);
    if (!Array.isArray(o.stages) || o.stages.length !== this.stages.length) stateError(where, `expected the states of ${this.stages.length} stages`);
    const saved = o.stages as unknown[];
    // Stateless stages saved null; a stage with state must have some.
    this.stages.forEach((s, i) => {
      if (!s.importState && saved[i] !== null) stateError(where, `stage ${i} (${s.name}) keeps no state, the file has some`);
      if (s.importState && (saved[i] === null || saved[i] === undefined)) stateError(where, `stage ${i} (${s.name}) has no saved state`);
    });
    // Each stage validates all of its state before it changes anything; to
    // keep the whole import all-or-nothing, restore the earlier stages on a
    // later stage's failure.
    const before = this.stages.map((s) => (s.exportState ? s.exportState() : null));
    let i = 0;
    try {
      for (; i < this.stages.length; i++) this.stages[i].importState?.(saved[i]);
    } catch (e) {
      for (let j = 0; j < i; j++) this.stages[j].importState?.(before[j]);
      throw e;
    }
  }
}
