// The command table. One file per command; this file only lists them.
export type { Command, CommandContext } from './command';
import type { Command } from './command';
import { infoCommand } from './info';
import { pretrainCommand } from './pretrain';
import { evalCommand } from './eval';
import { stealCommand } from './steal';
import { experimentCommand } from './experiment';
import { demoCommand } from './demo';
import { watermarkCommand } from './watermark';
import { serveCommand } from './serve';
import { keysCommand } from './keys';
import { auditCommand } from './audit';
import { poisonCommand } from './poison';
import { authCommand } from './auth';

export const commands: Record<string, Command> = {
  info: infoCommand,
  pretrain: pretrainCommand,
  eval: evalCommand,
  steal: stealCommand,
  experiment: experimentCommand,
  demo: demoCommand,
  watermark: watermarkCommand,
  serve: serveCommand,
  keys: keysCommand,
  audit: auditCommand,
  poison: poisonCommand,
  auth: authCommand,
};
