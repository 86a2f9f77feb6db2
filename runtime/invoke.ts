/**
 * `deno task invoke <function> '<json>'`: runs one function in-process on this node, without a running
 * runtime (it takes the state lock itself), and prints its JSON answer. For testing handlers locally.
 *
 * @module
 */
import { BpfdError, FUNCTIONS, invoke } from "../functions/mod.ts";
import { createNode, lazyImageStore } from "./ctx.ts";
import { configFrom, NODE_OPTIONS_HELP, parseNodeArgs } from "./options.ts";

const { values, positionals } = parseNodeArgs(Deno.args);
const [name, json = "{}"] = positionals;
if (values.help || !name) {
  console.log(`usage: deno task invoke <function> ['<json input>'] [options]

functions: ${[...FUNCTIONS.keys()].join(", ")}

${NODE_OPTIONS_HELP}`);
  Deno.exit(values.help ? 0 : 2);
}
const fn = await FUNCTIONS.get(name)?.();
if (!fn) {
  console.error(`no function ${name} (functions: ${[...FUNCTIONS.keys()].join(", ")})`);
  Deno.exit(2);
}
const config = await configFrom({ ...values, socket: "", listen: "" });
const node = await createNode(config, lazyImageStore(config.images));
try {
  const output = await invoke(
    fn,
    JSON.parse(json),
    node.ctxFor({ user: `uid:${Deno.uid()}`, via: "in-process" }),
  );
  console.log(JSON.stringify(output, null, 2));
} catch (err) {
  if (!(err instanceof BpfdError)) throw err;
  console.error(JSON.stringify(err.toBody(), null, 2));
  Deno.exitCode = 1;
} finally {
  node.close();
}
