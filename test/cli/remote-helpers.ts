// Shared by the `--target URL` CLI tests: running the CLI with an API key in
// the environment, and what a served key was charged. No server module is
// loaded here (the steal test checks that the CLI loads none by itself).
import { API_KEY_ENV } from '../../lib/cli/remote';
import { runMain } from './run-main';
import type { Running } from '../server/fixture';

/** Runs the CLI with $ENCSEC_API_KEY set to `key` (unset for null), and unsets it afterwards. */
export async function withKey(key: string | null, argv: string[]) {
  if (key === null) delete process.env[API_KEY_ENV];
  else process.env[API_KEY_ENV] = key;
  try {
    return await runMain(argv);
  } finally {
    delete process.env[API_KEY_ENV];
  }
}

/** Images the server charged (its budget store) and audited for a key id. */
export async function charged(s: Running, id: string) {
  return {
    used: await s.server.store.used(id),
    audited: s.server.audit.rows().filter((r) => r.keyId === id).reduce((n, r) => n + r.images, 0),
  };
}
