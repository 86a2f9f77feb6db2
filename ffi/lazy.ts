/**
 * Binds a shared library's symbols one at a time, on first use: dlopen costs about 0.27 ms per bound
 * symbol, and most processes (the CLI, a test that only lists) use a handful of them.
 *
 * @example
 * ```ts
 * const libc = lazyLibrary("libc.so.6", { getpid: { parameters: [], result: "i32" } });
 * libc.getpid();
 * ```
 * @module
 */

type Bound<S extends Record<string, Deno.ForeignFunction>> = Deno.DynamicLibrary<S>["symbols"];

/** An object with one function per symbol; each is dlopen-ed the first time it is called. */
export function lazyLibrary<const S extends Record<string, Deno.ForeignFunction>>(
  path: string,
  symbols: S,
): Bound<S> {
  const bound: Partial<Bound<S>> = {};
  return new Proxy(bound as Bound<S>, {
    get(target, name: string) {
      let fn = target[name as keyof S];
      if (!fn) {
        const definition = symbols[name];
        if (!definition) throw new Error(`${path}: symbol ${name} is not declared`);
        const lib = Deno.dlopen(path, { [name]: definition } as Record<string, Deno.ForeignFunction>);
        fn = lib.symbols[name] as Bound<S>[keyof S];
        target[name as keyof S] = fn;
      }
      return fn;
    },
  });
}

const encoder = new TextEncoder();

/** A NUL-terminated UTF-8 copy of `s`, for `const char *` parameters. */
export function cstring(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(encoder.encode(s).length + 1);
  encoder.encodeInto(s, bytes);
  return bytes;
}

/** Reads a NUL-terminated string at `ptr` (empty for null). */
export function readCString(ptr: Deno.PointerValue): string {
  return ptr ? Deno.UnsafePointerView.getCString(ptr) : "";
}

/** Reads a NUL-terminated string from a fixed-size byte array inside a struct buffer. */
export function fixedString(buf: Uint8Array, offset: number, length: number): string {
  const slice = buf.subarray(offset, offset + length);
  const end = slice.indexOf(0);
  return new TextDecoder().decode(end < 0 ? slice : slice.subarray(0, end));
}
