// Experiments: one resumable report folder (ExperimentGrid), one stealing
// cell (runStealCell), and the grids that use them.
export { DEFAULT_EVAL_TASKS, fileSha256, loadEvalTasks, loadQueryData, loadTarget } from './setup';
export type { LoadedTarget } from './setup';
export { ExperimentGrid, checkResumable, unionList } from './grid';
export type { GridFolderOptions, GridResults } from './grid';
export { ATTACK_SETTING_KEYS, checkAttackGrid } from './attack-settings';
export type { AttackGridOptions, AttackSettings } from './attack-settings';
export { attackCell, runGridStealCell, runStealCell } from './steal-cell';
export type { GridCellOptions, StealCellOptions, StealCellOutcome } from './steal-cell';
export { runStealGrid } from './steal';
export type { StealGridOptions, StealGridResult } from './steal';
export { canonicalDefenses, measureUtility, queryDataset, runDefenseGrid } from './defend';
export type { DefenseGridOptions, DefenseGridResult } from './defend';
export { POISON_DEFENSES, resolvePoisonGrid, runPoisonGrid } from './poison';
export type { PoisonDefenseName, PoisonGridOptions, PoisonGridResult } from './poison';
