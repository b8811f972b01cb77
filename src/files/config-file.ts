// Owns reading the config file from disk: YAML in, a validated and frozen Config out (the schema is
// the core's, webhook/config.ts). A missing --config means the built-in defaults.
import { ConfigError, parseConfig, type Config } from '../webhook/config.js';
import { readYamlFile } from './yaml-file.js';

/** Read and validate a YAML config file. A missing path gives the built-in defaults. */
export async function loadConfig(path: string | undefined): Promise<Config> {
  if (path === undefined) return parseConfig({});
  const document = await readYamlFile(path, 'config file', (message) => new ConfigError(message));
  return parseConfig(document, `config file ${path}`);
}
