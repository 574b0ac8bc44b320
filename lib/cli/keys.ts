// `encsec keys add|list|revoke --db DB`: the server's API keys. `add` prints
// the new key once (it is stored only as a keyed hash); `list` shows ids,
// budgets, rates, defenses and what each key spent, never a secret.
import type { Command } from './command';
// The server's modules (fastify, SQLite) load only when this command runs:
// `encsec` itself and the library stay light.
const loadServer = () => import('../server');
type KeyList = ReturnType<import('../server').KeyStore['list']>;

export const keysCommand: Command = {
  summary: 'manage the API keys of `encsec serve`: keys add | list | revoke --db DB',
  options: {
    db: { kind: 'string', help: 'the server database (made if missing)' },
    budget: { kind: 'int', help: 'add: images the key may send in total (default unlimited)' },
    rate: { kind: 'number', help: 'add: requests per second (default unlimited)' },
    defense: { kind: 'string', help: 'add: defense SPEC applied to its answers, as in `encsec steal --defense` (default none)' },
    admin: { kind: 'boolean', help: 'add: an admin key (may use the raw route, /v1/embed/raw)' },
    label: { kind: 'string', help: 'add: a note (who the key is for)' },
    id: { kind: 'string', help: 'revoke: the key id' },
  },
  async run(args) {
    const { KeyStore, openServerDb } = await loadServer();
    const [action, ...extra] = args.positional;
    if (!['add', 'list', 'revoke'].includes(action ?? '')) throw new Error(`keys needs an action: add | list | revoke, got ${JSON.stringify(action ?? '')}`);
    if (extra.length > 0) throw new Error(`unexpected argument ${JSON.stringify(extra[0])}`);
    const dbFile = args.string('db');
    if (!dbFile) throw new Error('--db FILE is required');
    const addOnly = ['budget', 'rate', 'defense', 'admin', 'label'].filter((k) => args.has(k) && !(k === 'admin' && !args.bool('admin')));
    if (action !== 'add' && addOnly.length > 0) throw new Error(`--${addOnly[0]} applies to keys add only`);
    if (action !== 'revoke' && args.has('id')) throw new Error('--id applies to keys revoke only');
    const db = openServerDb(dbFile);
    try {
      const store = new KeyStore(db);
      const show = (r: KeyList[number]) => ({ ...r, budget: r.budget === Infinity ? null : r.budget, rate: r.rate === Infinity ? null : r.rate });
      if (action === 'add') {
        const { key, record } = store.add({ budget: args.number('budget'), rate: args.number('rate'), defense: args.string('defense'), admin: args.bool('admin'), label: args.string('label') });
        return { action, key, ...show(record), note: 'the key is shown only now; it is stored as a keyed hash' };
      }
      if (action === 'revoke') {
        const id = args.string('id');
        if (!id) throw new Error('--id KEY_ID is required');
        const changed = store.revoke(id);
        return { action, id, revoked: true, alreadyRevoked: !changed };
      }
      const used = new Map((db.prepare('SELECT key_id, used, requests FROM usage').all() as { key_id: string; used: number; requests: number }[]).map((r) => [r.key_id, r]));
      return { action, keys: store.list().map((r) => ({ ...show(r), answered: used.get(r.id)?.used ?? 0, requests: used.get(r.id)?.requests ?? 0 })) };
    } finally {
      db.close();
    }
  },
};
