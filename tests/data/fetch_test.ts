import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { packTar, type TarEntry } from "modern-tar";
import { loadTestSet, loadTrainSet, TEST_FILE } from "../../src/data/cifar10.ts";
import {
  cacheDir,
  checkDataDir,
  CIFAR10_FOLDER,
  fetchCifar10,
  resolveDataDir,
} from "../../src/data/fetch.ts";
import { syntheticCifarFiles } from "../../src/data/synthetic.ts";
import { listDir, rejectsUserError, withTempDir } from "../_helpers.ts";

const RECORDS = 20;

/** A gzipped tarball laid out like the official one, from the given files. */
async function makeTarball(files: Record<string, Uint8Array>, extra: TarEntry[] = []): Promise<Uint8Array> {
  const entries: TarEntry[] = [
    { header: { name: `${CIFAR10_FOLDER}/`, type: "directory", size: 0 } },
    ...Object.entries(files).map(([name, body]) => ({
      header: { name: `${CIFAR10_FOLDER}/${name}`, size: body.length },
      body,
    })),
    ...extra,
  ];
  const tar = await packTar(entries);
  const gz = new Blob([tar as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(gz).arrayBuffer());
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

interface Served {
  url: (path: string) => string;
  hits: () => number;
  close: () => Promise<void>;
}

/** Serve `routes` (path -> bytes) on 127.0.0.1, any free port; other paths answer 404. */
function serve(routes: Record<string, Uint8Array>): Served {
  let hits = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    hits++;
    const body = routes[new URL(req.url).pathname];
    return body ? new Response(body as Uint8Array<ArrayBuffer>) : new Response("not here", { status: 404 });
  });
  const port = (server.addr as Deno.NetAddr).port;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    hits: () => hits,
    close: () => server.shutdown(),
  };
}

/** Set env vars for the duration of `fn`, then restore them. */
async function withEnv(vars: Record<string, string | undefined>, fn: () => Promise<void>): Promise<void> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  const apply = (v: Record<string, string | undefined>) => {
    for (const [k, val] of Object.entries(v)) val === undefined ? Deno.env.delete(k) : Deno.env.set(k, val);
  };
  apply(vars);
  try {
    await fn();
  } finally {
    apply(saved);
  }
}

const QUIET = { PRUNESCOPE_NO_PROGRESS: "1" };

Deno.test("fetchCifar10: downloads, verifies and extracts a tarball; the files load", async () => {
  const files = syntheticCifarFiles(RECORDS, 11);
  const readme = new TextEncoder().encode("<html>readme</html>");
  const tgz = await makeTarball({ ...files, "readme.html": readme }, [
    // entries that must not be written anywhere
    { header: { name: "../escape.bin", size: 3 }, body: new Uint8Array([1, 2, 3]) },
    { header: { name: `${CIFAR10_FOLDER}/extra.txt`, size: 2 }, body: "hi" },
  ]);
  const server = serve({ "/c.tar.gz": tgz });
  try {
    await withEnv(QUIET, () =>
      withTempDir(async (root) => {
        const dest = join(root, "cache", "cifar");
        const dir = await fetchCifar10({
          dest,
          url: server.url("/c.tar.gz"),
          sha256: sha256(tgz),
          size: tgz.length,
          recordsPerFile: RECORDS,
        });
        assert.equal(dir, dest);
        assert.deepEqual(await listDir(dest), [...Object.keys(files), "readme.html"].sort());
        assert.deepEqual(await listDir(join(root, "cache")), ["cifar"]); // no temp folder left
        for (const [name, bytes] of Object.entries(files)) {
          assert.deepEqual(await Deno.readFile(join(dest, name)), bytes);
        }
        const test = await loadTestSet(dest);
        assert.equal(test.count, RECORDS);
        assert.equal((await loadTrainSet(dest)).count, 5 * RECORDS);
        await assert.rejects(Deno.stat(join(root, "escape.bin")), Deno.errors.NotFound);

        // A second call finds the data complete and does not download again.
        const before = server.hits();
        assert.equal(
          await fetchCifar10({ dest, url: server.url("/c.tar.gz"), recordsPerFile: RECORDS }),
          dest,
        );
        assert.equal(server.hits(), before);
      }));
  } finally {
    await server.close();
  }
});

Deno.test("fetchCifar10: MD5 is checked when given", async () => {
  const tgz = await makeTarball(syntheticCifarFiles(RECORDS, 12));
  const server = serve({ "/c.tar.gz": tgz });
  try {
    await withEnv(QUIET, () =>
      withTempDir(async (root) => {
        const opts = {
          url: server.url("/c.tar.gz"),
          sha256: sha256(tgz),
          size: tgz.length,
          recordsPerFile: RECORDS,
        };
        await rejectsUserError(
          () => fetchCifar10({ ...opts, dest: join(root, "a"), md5: "0".repeat(32) }),
          /wrong MD5/,
        );
        assert.deepEqual(await listDir(root), []);
        const md5 = createHash("md5").update(tgz).digest("hex");
        assert.equal(await fetchCifar10({ ...opts, dest: join(root, "b"), md5 }), join(root, "b"));
      }));
  } finally {
    await server.close();
  }
});

Deno.test("fetchCifar10: a wrong checksum or size fails in one line and leaves no folder", async () => {
  const tgz = await makeTarball(syntheticCifarFiles(RECORDS, 13));
  const server = serve({ "/c.tar.gz": tgz });
  try {
    await withEnv(QUIET, () =>
      withTempDir(async (root) => {
        const dest = join(root, "cifar");
        const url = server.url("/c.tar.gz");
        const wrong = "ab".repeat(32);
        await rejectsUserError(
          () => fetchCifar10({ dest, url, sha256: wrong, size: tgz.length, recordsPerFile: RECORDS }),
          /wrong SHA-256/,
          new RegExp(`expected ${wrong}`),
          /nothing was kept/,
        );
        assert.deepEqual(await listDir(root), []);
        // The default expectations are the official tarball's: a small file is refused by its size.
        await rejectsUserError(() => fetchCifar10({ dest, url }), /offers \d+ bytes, expected 170052171/);
        assert.deepEqual(await listDir(root), []);
      }));
  } finally {
    await server.close();
  }
});

Deno.test("fetchCifar10: a checksum-valid archive that lacks a file or has a wrong size is refused", async () => {
  const files = syntheticCifarFiles(RECORDS, 14);
  const { ["data_batch_3.bin"]: _dropped, ...missing } = files;
  const noBatch3 = await makeTarball(missing);
  const short = await makeTarball({ ...files, [TEST_FILE]: files[TEST_FILE].subarray(0, 3073 * 5) });
  const server = serve({ "/missing.tgz": noBatch3, "/short.tgz": short });
  try {
    await withEnv(QUIET, () =>
      withTempDir(async (root) => {
        const dest = join(root, "cifar");
        await rejectsUserError(
          () =>
            fetchCifar10({
              dest,
              url: server.url("/missing.tgz"),
              sha256: sha256(noBatch3),
              size: noBatch3.length,
              recordsPerFile: RECORDS,
            }),
          /not CIFAR-10 binary: data_batch_3\.bin is missing/,
        );
        await rejectsUserError(
          () =>
            fetchCifar10({
              dest,
              url: server.url("/short.tgz"),
              sha256: sha256(short),
              size: short.length,
              recordsPerFile: RECORDS,
            }),
          /test_batch\.bin has 15365 bytes, expected 61460/,
        );
        assert.deepEqual(await listDir(root), []);
      }));
  } finally {
    await server.close();
  }
});

Deno.test("fetchCifar10: 404 and connection refused fail in one clear line, leaving nothing", async () => {
  const server = serve({});
  const missingUrl = server.url("/nope.tar.gz");
  // A port that was just free: nothing listens there once this server is shut down.
  const other = serve({});
  const refusedUrl = other.url("/c.tar.gz");
  await other.close();
  try {
    await withEnv(QUIET, () =>
      withTempDir(async (root) => {
        const dest = join(root, "cifar");
        await rejectsUserError(
          () => fetchCifar10({ dest, url: missingUrl }),
          new RegExp(`download of ${missingUrl.replace(/[.]/g, "\\.")} failed: the server answered 404`),
        );
        await rejectsUserError(
          () => fetchCifar10({ dest, url: refusedUrl }),
          /download of http:\/\/127\.0\.0\.1:\d+\/c\.tar\.gz failed: .*(refused|connect)/i,
        );
        await rejectsUserError(() => fetchCifar10({ dest, url: "not a url" }), /not a valid URL/);
        assert.deepEqual(await listDir(root), []);
      }));
  } finally {
    await server.close();
  }
});

Deno.test("fetchCifar10: refuses to overwrite a non-empty folder that is not CIFAR-10", async () => {
  await withEnv(QUIET, () =>
    withTempDir(async (root) => {
      await Deno.writeTextFile(join(root, "notes.txt"), "mine");
      await rejectsUserError(
        () => fetchCifar10({ dest: root, url: "http://127.0.0.1:9/x" }),
        /exists but is not a complete CIFAR-10 folder \(data_batch_1\.bin is missing\)/,
      );
      assert.deepEqual(await listDir(root), ["notes.txt"]);
    }));
});

Deno.test("checkDataDir: the committed fixture is complete at 200 records a file", async () => {
  const fixture = new URL("../../fixtures/cifar10-tiny/", import.meta.url).pathname;
  assert.equal(await checkDataDir(fixture, 200), null);
  assert.match((await checkDataDir(fixture)) ?? "", /has 614600 bytes, expected 30730000/);
});

Deno.test("cacheDir: PRUNESCOPE_CACHE, else XDG_CACHE_HOME/prunescope, else HOME/.cache/prunescope", async () => {
  await withEnv({ PRUNESCOPE_CACHE: "/tmp/a", XDG_CACHE_HOME: "/tmp/x", HOME: "/home/h" }, async () => {
    assert.equal(cacheDir(), "/tmp/a");
    Deno.env.delete("PRUNESCOPE_CACHE");
    assert.equal(cacheDir(), "/tmp/x/prunescope");
    Deno.env.delete("XDG_CACHE_HOME");
    assert.equal(cacheDir(), "/home/h/.cache/prunescope");
    await Promise.resolve();
  });
});

Deno.test("resolveDataDir: --data, then CIFAR10_DIR, then the cache; downloads only into the cache", async () => {
  const files = syntheticCifarFiles(RECORDS, 15);
  const tgz = await makeTarball(files);
  const server = serve({ "/c.tar.gz": tgz });
  try {
    await withTempDir(async (root) => {
      const write = async (dir: string) => {
        await Deno.mkdir(dir, { recursive: true });
        for (const [name, bytes] of Object.entries(files)) await Deno.writeFile(join(dir, name), bytes);
      };
      const a = join(root, "a"), b = join(root, "b"), cache = join(root, "cache");
      await write(a);
      await write(b);
      const env = {
        ...QUIET,
        CIFAR10_DIR: b,
        PRUNESCOPE_CACHE: cache,
        PRUNESCOPE_CIFAR10_URL: server.url("/c.tar.gz"),
        PRUNESCOPE_CIFAR10_SHA256: sha256(tgz),
        PRUNESCOPE_CIFAR10_SIZE: String(tgz.length),
        PRUNESCOPE_CIFAR10_RECORDS: String(RECORDS),
      };
      await withEnv(env, async () => {
        assert.equal(await resolveDataDir({ data: a, fetch: true }), a);
        assert.equal(await resolveDataDir({ fetch: true }), b);
        assert.equal(server.hits(), 0);

        // --data pointing at an empty folder is an error, never a download.
        const empty = join(root, "empty");
        await Deno.mkdir(empty);
        await rejectsUserError(() => resolveDataDir({ data: empty, fetch: true }), /has no test_batch\.bin/);
        assert.equal(server.hits(), 0);

        Deno.env.delete("CIFAR10_DIR");
        await rejectsUserError(
          () => resolveDataDir({ fetch: false }),
          /\(the cache\) does not exist and downloading is off/,
        );
        const fetched = await resolveDataDir({ fetch: true });
        assert.equal(fetched, join(cache, CIFAR10_FOLDER));
        assert.equal(server.hits(), 1);
        assert.equal((await loadTestSet(fetched)).count, RECORDS);
        assert.equal(await resolveDataDir({ fetch: true }), fetched); // cached now
        assert.equal(server.hits(), 1);
      });
    });
  } finally {
    await server.close();
  }
});

Deno.test("resolveDataDir: missing data names the three ways to supply it and why the download failed", async () => {
  const server = serve({});
  try {
    await withTempDir(async (root) => {
      await withEnv({ ...QUIET, CIFAR10_DIR: undefined, PRUNESCOPE_CACHE: join(root, "cache") }, async () => {
        const ways = [/--data DIR/, /CIFAR10_DIR=DIR/, /deno task fetch-data/];
        await rejectsUserError(
          () => resolveDataDir({ fetch: true, url: server.url("/gone.tar.gz") }),
          /the download failed \(download of .* failed: the server answered 404 Not Found\)/,
          ...ways,
        );
        await rejectsUserError(
          () => resolveDataDir({ data: join(root, "nowhere"), fetch: true }),
          /does not exist/,
          ...ways,
        );
        await withEnv({ CIFAR10_DIR: join(root, "nowhere") }, async () => {
          await rejectsUserError(
            () => resolveDataDir({ fetch: true }),
            /\(CIFAR10_DIR\) does not exist/,
            ...ways,
          );
        });
        assert.deepEqual(await listDir(root), ["cache"]); // the cache folder itself, empty
        assert.deepEqual(await listDir(join(root, "cache")), []);
      });
    });
  } finally {
    await server.close();
  }
});

/** Run `main.ts fetch-data` in a child Deno with the given permissions and env. */
async function runCli(args: string[], perms: string[], env: Record<string, string>) {
  const main = new URL("../../main.ts", import.meta.url).pathname;
  const out = await new Deno.Command("deno", {
    args: ["run", "--quiet", ...perms, main, "fetch-data", ...args],
    env: { ...env, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("deno task fetch-data end to end: progress on stderr, one-line errors, exit codes", async () => {
  const tgz = await makeTarball(syntheticCifarFiles(RECORDS, 16));
  const server = serve({ "/c.tar.gz": tgz });
  try {
    await withTempDir(async (root) => {
      const dest = join(root, "data");
      const perms = ["--allow-read", `--allow-write=${root}`, "--allow-env", "--allow-net=127.0.0.1"];
      const env = {
        // Other test files quiet their bars with PRUNESCOPE_NO_PROGRESS; this child must draw its own.
        PRUNESCOPE_NO_PROGRESS: "0",
        PRUNESCOPE_CIFAR10_SHA256: sha256(tgz),
        PRUNESCOPE_CIFAR10_SIZE: String(tgz.length),
        PRUNESCOPE_CIFAR10_RECORDS: String(RECORDS),
      };
      const ok = await runCli(["--dest", dest, "--url", server.url("/c.tar.gz")], perms, env);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, new RegExp(`CIFAR-10 is ready in ${dest} .*--data ${dest}`));
      assert.match(ok.stderr, /^download c\.tar\.gz \[#{24}\] .* 100% /m);
      assert.match(ok.stderr, /^extract \[#{24}\] .* 100% /m);
      assert.equal(await checkDataDir(dest, RECORDS), null);

      const missing = await runCli(["--dest", join(root, "other"), "--url", server.url("/gone")], perms, env);
      assert.equal(missing.code, 1);
      assert.equal(missing.stdout, "");
      assert.match(
        missing.stderr,
        /^prunescope fetch-data: download of .*\/gone failed: the server answered 404 Not Found\.\n$/,
      );

      // The task's own permissions reach only www.cs.toronto.edu: another host is a clear refusal.
      const taskPerms = [
        "--allow-read",
        `--allow-write=${root}`,
        "--allow-env",
        "--allow-net=www.cs.toronto.edu",
      ];
      const denied = await runCli(
        ["--dest", join(root, "x"), "--url", server.url("/c.tar.gz")],
        taskPerms,
        env,
      );
      assert.equal(denied.code, 1);
      assert.match(
        denied.stderr,
        /^prunescope fetch-data: no permission to reach 127\.0\.0\.1:\d+: .*--allow-net=127\.0\.0\.1:\d+/,
      );
      assert.doesNotMatch(denied.stderr, /\n./, "one line, no stack trace");

      const help = await runCli(["--help"], perms, env);
      assert.equal(help.code, 0);
      assert.match(
        help.stdout,
        /usage: deno task fetch-data \[--dataset NAME\] \[--dest DIR\] \[--url URL\]/,
      );
      assert.deepEqual(await listDir(root), ["data"]);
    });
  } finally {
    await server.close();
  }
});

Deno.test("fetchDataset: IDX .gz files and a CIFAR-100 tarball, MD5-checked, staged and renamed; a bad MD5 keeps nothing", async () => {
  const { fetchDataset, REMOTE_DATASETS } = await import("../../src/data/fetch.ts");
  const { loadIdxSet } = await import("../../src/data/idx.ts");
  const { loadCifar100Set } = await import("../../src/data/cifar100.ts");
  const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");
  const idx = (dims: number[], fill: number) => {
    const n = dims.reduce((a, b) => a * b, 1);
    const out = new Uint8Array(4 + 4 * dims.length + n).fill(fill);
    out.set([0, 0, 8, dims.length]);
    dims.forEach((d, i) => new DataView(out.buffer).setUint32(4 + 4 * i, d, false));
    return out;
  };
  const gz = async (b: Uint8Array) =>
    new Uint8Array(
      await new Response(
        new Blob([b as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream("gzip")),
      )
        .arrayBuffer(),
    );
  const files: Record<string, Uint8Array> = {
    "/train-images-idx3-ubyte.gz": await gz(idx([3, 4, 4], 7)),
    "/train-labels-idx1-ubyte.gz": await gz(idx([3], 2)),
    "/t10k-images-idx3-ubyte.gz": await gz(idx([2, 4, 4], 9)),
    "/t10k-labels-idx1-ubyte.gz": await gz(idx([2], 5)),
  };
  const c100 = new Uint8Array(3074 * 2).fill(1);
  const tar = await packTar([
    { header: { name: "cifar-100-binary/test.bin", size: c100.length }, body: c100 },
    { header: { name: "cifar-100-binary/evil.sh", size: 2 }, body: "hi" },
  ]);
  const tgz = await gz(tar);
  const server = serve({ ...files, "/c100.tgz": tgz });
  try {
    await withEnv(QUIET, () =>
      withTempDir(async (root) => {
        const mnist = {
          ...REMOTE_DATASETS.mnist,
          files: REMOTE_DATASETS.mnist.files.map((f) => ({
            ...f,
            url: server.url(`/${f.name}`),
            md5: md5(files[`/${f.name}`]),
            size: files[`/${f.name}`].length,
          })),
        };
        const dest = join(root, "mnist");
        assert.equal(await fetchDataset(mnist, { dest }), dest);
        const test = await loadIdxSet(dest, "t10k");
        assert.equal(test.count, 2);
        assert.deepEqual([...test.labels], [5, 5]);
        assert.deepEqual(await listDir(root), ["mnist"]); // no temp folder left
        const hits = server.hits();
        assert.equal(await fetchDataset(mnist, { dest }), dest); // complete: no download
        assert.equal(server.hits(), hits);

        const wrong = {
          ...mnist,
          files: mnist.files.map((f, i) => (i === 2 ? { ...f, md5: "0".repeat(32) } : f)),
        };
        await rejectsUserError(() => fetchDataset(wrong, { dest: join(root, "m2") }), /wrong MD5/);
        assert.deepEqual(await listDir(root), ["mnist"]);

        const cifar100 = {
          ...REMOTE_DATASETS.cifar100,
          files: [{ ...REMOTE_DATASETS.cifar100.files[0], url: server.url("/c100.tgz"), md5: md5(tgz) }],
          check: async (
            dir: string,
          ) => ((await Deno.stat(join(dir, "test.bin"))).isFile ? null : "no test.bin"),
        };
        const c = await fetchDataset(cifar100, { dest: join(root, "c100") });
        assert.deepEqual(await listDir(c), ["test.bin"]); // evil.sh is not on the allow-list
        assert.equal((await loadCifar100Set(c, "test")).count, 2);
        await rejectsUserError(() => fetchDataset("imagenet"), /unknown data set 'imagenet'/);
      }));
  } finally {
    await server.close();
  }
});
