/**
 * Prints the npm package directories (absolute paths inside Deno's npm cache, one a line) that Deno resolves
 * for the given modules — every package of the project's npm resolution, which `deno test --cached-only`
 * wants in its cache at start-up even when the modules load only a few — and each package's registry.json
 * where Deno keeps one (it fetches none for packages the lockfile pins).
 * The VM tier copies them into the guest's DENO_DIR so that the guest resolves offline. Run it in the
 * project directory.
 *
 * @example
 * ```sh
 * deno run -A tests/vm/npm_closure.ts tests/vm/probes_test.ts
 * ```
 * @module
 */
interface Info {
  npmPackages?: Record<string, { localPath?: string }>;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

const paths = new Set<string>();
for (const file of Deno.args) {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json", file], stderr: "inherit" })
    .output();
  if (out.code !== 0) Deno.exit(out.code);
  const info: Info = JSON.parse(new TextDecoder().decode(out.stdout));
  for (const [id, pkg] of Object.entries(info.npmPackages ?? {})) {
    if (!pkg.localPath) throw new Error(`npm package ${id} is not in Deno's cache (run deno install)`);
    paths.add(pkg.localPath);
    const registryJson = `${pkg.localPath.slice(0, pkg.localPath.lastIndexOf("/"))}/registry.json`;
    if (await exists(registryJson)) paths.add(registryJson);
  }
}
console.log([...paths].sort().join("\n"));
