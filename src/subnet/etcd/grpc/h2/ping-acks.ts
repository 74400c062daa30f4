// The ACKs of a peer's PINGs, held back to ride with the next frame sent (H2Session.enqueue) or sent on their
// own after PING_ACK_DELAY_MS. A grpc-go server (etcd) sends a BDP-estimation PING (with a WINDOW_UPDATE) after
// each request that arrives while none is outstanding: ACKing at once costs both sides a write and a read per
// request, and more than a third of the lease acquisition's CPU in bench/leases. Held back, there is at most one
// such PING per connection every PING_ACK_DELAY_MS. RFC 9113 §6.7 requires the ACK and asks (SHOULD) for
// priority; etcd's keepalive allows 20 s. A peer sending many PINGs gets its ACKs at once.
import { Flag, FrameType, frame } from './frames.js';

/** How long the ACK of a peer's PING may wait for a frame to ride with. */
export const PING_ACK_DELAY_MS = 500;
const MAX_HELD = 8;

export class HeldPingAcks {
  private acks: Buffer[] = [];
  private timer: NodeJS.Timeout | undefined;

  /** `write` sends bytes on the connection (for ACKs that cannot wait any longer). */
  constructor(private readonly write: (bytes: Buffer) => void) {}

  get pending(): boolean {
    return this.acks.length > 0;
  }

  /** Holds the ACK of a PING with this payload. */
  add(payload: Buffer): void {
    this.acks.push(frame(FrameType.PING, Flag.ACK, 0, payload));
    if (this.acks.length >= MAX_HELD) {
      this.write(this.take());
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.acks.length > 0) this.write(this.take());
    }, PING_ACK_DELAY_MS);
    this.timer.unref();
  }

  /** The held ACKs as one buffer, to send now. */
  take(): Buffer {
    const acks = this.acks;
    this.acks = [];
    this.clear();
    return acks.length === 1 ? (acks[0] as Buffer) : Buffer.concat(acks);
  }

  /** Stops the timer (the connection is gone). */
  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
