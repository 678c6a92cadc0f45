// BullMQ's side of `ff bench e2e`: N no-op jobs submitted with Queue.addBulk
// in batches of 1,000 (its bulk submit), then one Worker runs them all to
// completion. Prints one JSON line like ff's bench.
// node e2e.mjs redis://127.0.0.1:6379 100000 512
import { Queue, Worker } from "bullmq";

const [url = "redis://127.0.0.1:6379", nArg = "100000", concArg = "512"] = process.argv.slice(2);
const n = Number(nArg);
const concurrency = Number(concArg);
const u = new URL(url);
const connection = { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null };
const name = "bench";

const queue = new Queue(name, { connection });
await queue.waitUntilReady();
const info = await (await queue.client).info("server");
const field = (k) => new RegExp(`^${k}:(\\S+)`, "m").exec(info)?.[1] ?? "";
const version = field("valkey_version") || field("redis_version");

let t = process.hrtime.bigint();
for (let i = 0; i < n; i += 1000) {
  const jobs = [];
  for (let j = i; j < Math.min(n, i + 1000); j++) jobs.push({ name: "noop", data: "x" });
  await queue.addBulk(jobs);
}
const submitSecs = Number(process.hrtime.bigint() - t) / 1e9;

let done = 0;
let finish;
const finished = new Promise((r) => (finish = r));
t = process.hrtime.bigint();
const worker = new Worker(name, async () => "x", { connection, concurrency, autorun: false });
worker.on("completed", () => {
  done += 1;
  if (done === n) finish();
});
worker.run();
await finished;
const runSecs = Number(process.hrtime.bigint() - t) / 1e9;
await worker.close();
await queue.obliterate({ force: true });
await queue.close();

const round = (x) => Math.round(x);
console.log(
  JSON.stringify({
    scenario: "bullmq-e2e",
    bullmq_version: (await import("bullmq/package.json", { with: { type: "json" } })).default.version,
    server_version: version,
    n,
    concurrency,
    submit_per_sec: round(n / submitSecs),
    jobs_per_sec: round(n / runSecs),
  }),
);
process.exit(0);
