// Owns reading a YAML (or JSON) file into a plain document, with errors that name the file and what
// it is for ("config file", "namespaces file") so a start-up failure says exactly what to fix.
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';

export async function readYamlFile(path: string, what: string, makeError: (message: string) => Error): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw makeError(`cannot read ${what} ${path}: ${(error as Error).message}`);
  }
  try {
    return parseYaml(text);
  } catch (error) {
    throw makeError(`${what} ${path} is not valid YAML: ${(error as Error).message}`);
  }
}
