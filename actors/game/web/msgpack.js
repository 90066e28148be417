// The few msgpack types the game's datagrams use (docs/systems/game-protocol.md): arrays, integers,
// strings; decoding also reads nil, booleans, floats and maps. No dependency, no build step.
"use strict";

const MsgPack = (() => {
  const utf8 = new TextEncoder();
  const text = new TextDecoder();

  function encode(value) {
    const out = [];
    write(value, out);
    return new Uint8Array(out);
  }

  function bytesOf(n, width) {
    const bytes = [];
    for (let i = width - 1; i >= 0; i--) bytes.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
    return bytes;
  }

  function write(value, out) {
    if (Array.isArray(value)) {
      if (value.length < 16) out.push(0x90 | value.length);
      else out.push(0xdc, ...bytesOf(value.length, 2));
      for (const item of value) write(item, out);
    } else if (typeof value === "string") {
      const raw = utf8.encode(value);
      if (raw.length < 32) out.push(0xa0 | raw.length);
      else if (raw.length < 256) out.push(0xd9, raw.length);
      else out.push(0xda, ...bytesOf(raw.length, 2));
      out.push(...raw);
    } else if (Number.isInteger(value)) {
      if (value >= 0) {
        if (value < 128) out.push(value);
        else if (value < 256) out.push(0xcc, value);
        else if (value < 65536) out.push(0xcd, ...bytesOf(value, 2));
        else out.push(0xce, ...bytesOf(value, 4));
      } else if (value >= -32) {
        out.push(value & 0xff);
      } else if (value >= -128) {
        out.push(0xd0, value & 0xff);
      } else {
        out.push(0xd2, ...bytesOf(value >>> 0, 4));
      }
    } else {
      throw new TypeError("the game's datagrams hold arrays, integers and strings only");
    }
  }

  function decode(buffer) {
    const view = new DataView(buffer instanceof ArrayBuffer ? buffer : buffer.buffer);
    let at = 0;
    function str(n) { const s = text.decode(new Uint8Array(view.buffer, at, n)); at += n; return s; }
    function arr(n) { const a = []; for (let i = 0; i < n; i++) a.push(read()); return a; }
    function map(n) { const m = {}; for (let i = 0; i < n; i++) { const k = read(); m[k] = read(); } return m; }
    function read() {
      const b = view.getUint8(at++);
      if (b < 0x80) return b;
      if (b >= 0xe0) return b - 0x100;
      if ((b & 0xf0) === 0x90) return arr(b & 0x0f);
      if ((b & 0xf0) === 0x80) return map(b & 0x0f);
      if ((b & 0xe0) === 0xa0) return str(b & 0x1f);
      let v;
      switch (b) {
        case 0xc0: return null;
        case 0xc2: return false;
        case 0xc3: return true;
        case 0xcc: v = view.getUint8(at); at += 1; return v;
        case 0xcd: v = view.getUint16(at); at += 2; return v;
        case 0xce: v = view.getUint32(at); at += 4; return v;
        case 0xcf: v = Number(view.getBigUint64(at)); at += 8; return v;
        case 0xd0: v = view.getInt8(at); at += 1; return v;
        case 0xd1: v = view.getInt16(at); at += 2; return v;
        case 0xd2: v = view.getInt32(at); at += 4; return v;
        case 0xd3: v = Number(view.getBigInt64(at)); at += 8; return v;
        case 0xca: v = view.getFloat32(at); at += 4; return v;
        case 0xcb: v = view.getFloat64(at); at += 8; return v;
        case 0xd9: v = view.getUint8(at); at += 1; return str(v);
        case 0xda: v = view.getUint16(at); at += 2; return str(v);
        case 0xdb: v = view.getUint32(at); at += 4; return str(v);
        case 0xdc: v = view.getUint16(at); at += 2; return arr(v);
        case 0xdd: v = view.getUint32(at); at += 4; return arr(v);
        case 0xde: v = view.getUint16(at); at += 2; return map(v);
        default: throw new Error("msgpack type 0x" + b.toString(16) + " is not used by the game");
      }
    }
    return read();
  }

  return { encode, decode };
})();
