/**
 * The Task contract (kube-router's model): every long-running loop — lease keeper, lease watch, reconcile
 * loop, firewall check, peer prober, kube node readiness, a backend's helper process — is a Task. `run`
 * works until `signal` aborts and calls `beat()` each time it has done its work (or confirmed there was none);
 * `/healthz` fails when a task's last beat is older than `periodMs` plus a grace time.
 */
export interface Task {
  /** Stable name, shown in /healthz, /status and logs (e.g. `lease-keeper`). */
  readonly name: string;
  /** How often the task beats when healthy. */
  readonly periodMs: number;
  run(ctx: TaskContext): Promise<void>;
}

export interface TaskContext {
  readonly signal: AbortSignal;
  /** Records that the task did its work just now. */
  beat(): void;
}
