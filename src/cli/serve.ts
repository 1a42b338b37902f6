import type { CommandGroup } from './common.js';

export const commands: CommandGroup = {};
