// Bounded UDP sender for the lab: sends COUNT datagrams of SIZE payload bytes
// from SRC_PORT to ADDR:PORT, one every INTERVAL_MS (fewer if SIGTERM stops
// it early), then waits up to WAIT_MS for replies and prints
// {"sent","received","receivedBytes"} as JSON.
// Usage: node udp-send.mjs ADDR PORT SRC_PORT COUNT SIZE INTERVAL_MS WAIT_MS
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';

const [address, ...numbers] = process.argv.slice(2);
const [port, srcPort, count, size, intervalMs, waitMs] = numbers.map(Number);
if (!address || numbers.length !== 6 || numbers.some((n) => !Number.isInteger(Number(n)))) {
  console.error('usage: udp-send.mjs ADDR PORT SRC_PORT COUNT SIZE INTERVAL_MS WAIT_MS');
  process.exit(2);
}
if (count > 10_000) {
  console.error('refusing to send more than 10000 datagrams');
  process.exit(2);
}

const socket = createSocket(isIPv6(address) ? 'udp6' : 'udp4');
const payload = Buffer.alloc(size, 0x71);
let sent = 0;
let received = 0;
let receivedBytes = 0;

function finish() {
  // Pipes are written synchronously on Linux, so exiting here loses no output.
  console.log(JSON.stringify({ sent, received, receivedBytes }));
  process.exit(0);
}

socket.on('message', (message) => {
  received += 1;
  receivedBytes += message.length;
  if (received === count && sent === count) finish();
});
socket.on('error', (error) => {
  console.error(error.message);
  process.exit(1);
});

// SIGTERM: stop sending, still wait for replies and report.
let stopped = false;
process.on('SIGTERM', () => {
  stopped = true;
});

socket.bind(srcPort, () => {
  const sendOne = () => {
    if (sent === count || stopped) {
      setTimeout(finish, waitMs);
      return;
    }
    socket.send(payload, port, address, (error) => {
      if (error) {
        console.error(error.message);
        process.exit(1);
      }
      sent += 1;
      setTimeout(sendOne, intervalMs);
    });
  };
  sendOne();
});
