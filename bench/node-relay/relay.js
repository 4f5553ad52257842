// The reference relay for the benchmarks: the smallest useful WebSocket
// relay on Node's `ws` package. A client connects to /ws/ROOM; every text
// message it sends goes, unchanged, to every other client in that room.
// No validation, no limits, no presence: what someone writes in ten minutes.
//
// Usage: node relay.js [port]   (prints "listening on PORT" when ready)
"use strict";
const { WebSocketServer } = require("ws");

const rooms = new Map(); // room id -> Set of sockets
const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(process.argv[2] || 0) });

wss.on("connection", (socket, req) => {
  const room = decodeURIComponent((req.url || "/").split("/").pop() || "lobby");
  let members = rooms.get(room);
  if (!members) rooms.set(room, (members = new Set()));
  members.add(socket);
  socket.on("message", (data, isBinary) => {
    if (isBinary) return;
    for (const other of members) {
      if (other !== socket && other.readyState === 1) other.send(data, { binary: false });
    }
  });
  socket.on("close", () => {
    members.delete(socket);
    if (members.size === 0) rooms.delete(room);
  });
  socket.on("error", () => {});
});

wss.on("listening", () => console.log(`listening on ${wss.address().port}`));
