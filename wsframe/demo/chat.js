// The wsframe chat page: a plain-JS client of the JSON protocol in
// docs/chat-protocol.md. User data is only ever put in the page with
// textContent, never as HTML.
"use strict";

(() => {
  const STATES = ["connecting", "open", "closing", "closed"];
  const HEARTBEAT_MS = 15000; // application-level ping (browsers cannot send WS pings)
  const PONG_TIMEOUT_MS = 10000; // no answer by then: the connection is dead
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const TYPING_EVERY_MS = 2500;
  const TYPING_SHOWN_MS = 4000;

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  const state = {
    ws: null,
    nick: null, // confirmed by the server
    wantedNick: null, // what we ask for (kept across reconnects)
    token: null, // lets us re-claim the nickname before the old connection times out
    joined: new Set(), // rooms we are in (rejoined after a reconnect)
    current: null, // the conversation shown: a room name or "@nick"
    convs: new Map(), // conversation -> {messages: [], unread: 0}
    rooms: new Map(), // room -> Set of nicknames in it
    typing: new Map(), // room -> Map(nick -> expiry time)
    attempt: 0,
    reconnectAt: 0,
    reconnectTimer: null,
    pingId: 0,
    pingSentAt: 0,
    pongDeadline: 0,
    rtt: null,
    lastTypingSent: 0,
  };

  // ------------------------------------------------------------ connection

  function wsUrl() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    state.reconnectAt = 0;
    const ws = new WebSocket(wsUrl());
    state.ws = ws;
    renderState();
    ws.onopen = () => {
      renderState();
      if (state.wantedNick) send({ type: "hello", nick: state.wantedNick, token: state.token || undefined });
    };
    ws.onmessage = (event) => {
      if (ws !== state.ws) return;
      state.pongDeadline = 0; // any message proves the connection alive
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      const handler = handlers[msg.type];
      if (handler) handler(msg);
    };
    ws.onclose = () => {
      if (ws === state.ws) lost();
    };
    ws.onerror = () => renderState();
  }

  // The socket is gone (closed by the server, the network, or our heartbeat):
  // retry with exponential backoff, with jitter, capped.
  function lost() {
    state.ws = null;
    state.nick = null;
    state.rooms.forEach((users) => users.clear());
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** state.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    state.attempt += 1;
    state.reconnectAt = Date.now() + delay;
    state.reconnectTimer = setTimeout(connect, delay);
    setComposer(false);
    renderAll();
  }

  function send(obj) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      toast("not connected: the message was not sent");
      return false;
    }
    ws.send(JSON.stringify(obj));
    return true;
  }

  function heartbeat() {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    state.pingId += 1;
    state.pingSentAt = performance.now();
    state.pongDeadline = Date.now() + PONG_TIMEOUT_MS;
    ws.send(JSON.stringify({ type: "ping", id: state.pingId }));
  }

  function checkAlive() {
    const ws = state.ws;
    if (ws && state.pongDeadline && Date.now() > state.pongDeadline) {
      // A dead connection may take minutes to report it: drop it now.
      state.pongDeadline = 0;
      state.ws = null;
      ws.onclose = ws.onmessage = ws.onopen = ws.onerror = null;
      try { ws.close(4000, "heartbeat timeout"); } catch (err) { /* already closing */ }
      lost();
    }
    renderState();
  }

  // -------------------------------------------------------------- handlers

  const handlers = {
    welcome(msg) {
      state.nick = msg.nick;
      state.token = msg.token;
      state.attempt = 0;
      $("login").hidden = true;
      $("login-error").textContent = "";
      try { localStorage.setItem("wsframe-chat-nick", msg.nick); } catch (err) { /* private mode */ }
      applyRoomList(msg.rooms);
      const rooms = state.joined.size ? [...state.joined] : ["general"];
      rooms.forEach((room) => send({ type: "join", room }));
      setComposer(true);
      renderAll();
      heartbeat(); // measures the round trip at once
    },
    joined(msg) {
      state.joined.add(msg.room);
      state.rooms.set(msg.room, new Set(msg.users));
      // The history replaces what we had: after a reconnect nothing is doubled.
      const conv = conversation(msg.room);
      conv.messages = msg.history.map((m) => ({ ...m, kind: "message" }));
      if (!state.current || !state.convs.has(state.current) || state.current === msg.room) {
        show(msg.room);
      } else {
        renderAll();
      }
    },
    left(msg) {
      state.joined.delete(msg.room);
      if (state.current === msg.room) {
        const next = [...state.joined][0] || null;
        state.current = null;
        if (next) show(next);
      }
      state.convs.delete(msg.room);
      renderAll();
    },
    rooms(msg) {
      applyRoomList(msg.rooms);
      renderAll();
    },
    presence(msg) {
      for (const change of msg.changes) {
        let users = state.rooms.get(change.room);
        if (!users) state.rooms.set(change.room, (users = new Set()));
        const had = users.has(change.nick);
        if (change.action === "join") users.add(change.nick);
        else users.delete(change.nick);
        const changed = had !== users.has(change.nick);
        if (changed && state.joined.has(change.room) && change.nick !== state.nick) {
          const verb = change.action === "join" ? "joined" : "left";
          addToConv(change.room, { kind: "system", text: `${change.nick} ${verb} #${change.room}` });
        }
        if (change.action === "leave") clearTyping(change.room, change.nick);
      }
      renderAll();
    },
    message(msg) {
      clearTyping(msg.room, msg.from);
      addToConv(msg.room, { ...msg, kind: "message" });
      renderAll();
    },
    dm(msg) {
      const other = msg.from === state.nick ? msg.to : msg.from;
      addToConv("@" + other, { ...msg, kind: "message" });
      renderAll();
    },
    typing(msg) {
      if (!state.typing.has(msg.room)) state.typing.set(msg.room, new Map());
      state.typing.get(msg.room).set(msg.nick, Date.now() + TYPING_SHOWN_MS);
      renderTyping();
    },
    pong() {
      state.rtt = Math.round(performance.now() - state.pingSentAt);
      renderState();
    },
    error(msg) {
      if (msg.ref === "hello" && !state.nick) {
        // Nickname refused: ask again (also after a reconnect, if it got taken).
        state.wantedNick = null;
        $("login").hidden = false;
        $("login-error").textContent = msg.message;
        return;
      }
      toast(msg.message);
    },
  };

  function applyRoomList(list) {
    state.rooms.clear();
    for (const entry of list) state.rooms.set(entry.room, new Set(entry.users));
  }

  function conversation(name) {
    let conv = state.convs.get(name);
    if (!conv) state.convs.set(name, (conv = { messages: [], unread: 0 }));
    return conv;
  }

  function addToConv(name, item) {
    const conv = conversation(name);
    conv.messages.push(item);
    if (conv.messages.length > 500) conv.messages.splice(0, conv.messages.length - 500);
    if (name !== state.current && item.kind === "message") conv.unread += 1;
    if (name === state.current) appendMessage(item, true);
  }

  function clearTyping(room, nick) {
    const typers = state.typing.get(room);
    if (typers && typers.delete(nick)) renderTyping();
  }

  function show(name) {
    state.current = name;
    conversation(name).unread = 0;
    renderAll();
    renderMessages();
    $("text").focus();
  }

  // ------------------------------------------------------------- rendering

  function renderState() {
    const ws = state.ws;
    const node = $("conn-state");
    const name = ws ? STATES[ws.readyState] : "closed";
    node.textContent = name;
    node.dataset.state = name;
    let detail = "";
    if (!ws && state.reconnectAt) {
      detail = `reconnecting in ${Math.max(0, (state.reconnectAt - Date.now()) / 1000).toFixed(1)} s`;
    } else if (name === "open" && state.rtt !== null) {
      detail = `rtt ${state.rtt} ms`;
    }
    $("conn-detail").textContent = detail;
    const me = $("me");
    me.hidden = !state.nick;
    me.textContent = state.nick || "";
  }

  function renderAll() {
    renderState();
    renderRooms();
    renderDms();
    renderUsers();
    renderTyping();
    const title = $("conv-title");
    if (!state.current) title.textContent = state.nick ? "Pick a room" : "…";
    else title.textContent = state.current.startsWith("@") ? state.current : "#" + state.current;
    $("leave").hidden = !state.current || !state.joined.has(state.current);
  }

  function renderRooms() {
    const list = $("rooms");
    list.replaceChildren();
    const names = new Set([...state.rooms.keys(), ...state.joined]);
    for (const room of [...names].sort()) {
      const li = el("li");
      li.dataset.room = room;
      if (state.joined.has(room)) li.classList.add("joined");
      if (room === state.current) li.classList.add("active");
      li.append(el("span", "name", room));
      const unread = state.convs.has(room) ? state.convs.get(room).unread : 0;
      if (unread) li.append(el("span", "badge", String(unread)));
      li.append(el("span", "count", String((state.rooms.get(room) || new Set()).size)));
      li.title = state.joined.has(room) ? "open" : "join";
      li.onclick = () => (state.joined.has(room) ? show(room) : send({ type: "join", room }));
      list.append(li);
    }
  }

  function renderDms() {
    const list = $("dms");
    const names = [...state.convs.keys()].filter((name) => name.startsWith("@")).sort();
    list.replaceChildren();
    if (!names.length) {
      list.append(el("li", "empty", "click a name to write privately"));
      return;
    }
    for (const name of names) {
      const li = el("li");
      li.dataset.dm = name.slice(1);
      if (name === state.current) li.classList.add("active");
      li.append(el("span", "name", name));
      const unread = state.convs.get(name).unread;
      if (unread) li.append(el("span", "badge", String(unread)));
      li.onclick = () => show(name);
      list.append(li);
    }
  }

  function renderUsers() {
    const list = $("users");
    list.replaceChildren();
    const room = state.current && !state.current.startsWith("@") ? state.current : null;
    $("users-title").textContent = room ? `Online in #${room}` : "Online";
    if (!room) return;
    for (const nick of [...(state.rooms.get(room) || [])].sort()) {
      const li = el("li", nick === state.nick ? "self" : "", nick);
      li.dataset.nick = nick;
      if (nick !== state.nick) {
        li.title = "send a direct message";
        li.onclick = () => show("@" + nick);
      }
      list.append(li);
    }
  }

  function renderTyping() {
    const now = Date.now();
    const typers = state.typing.get(state.current);
    const names = [];
    if (typers) {
      for (const [nick, until] of typers) {
        if (until > now) names.push(nick);
        else typers.delete(nick);
      }
    }
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length > 1) text = `${names.join(", ")} are typing…`;
    $("typing").textContent = text;
  }

  function renderMessages() {
    const list = $("messages");
    list.replaceChildren();
    const conv = state.current ? state.convs.get(state.current) : null;
    if (conv) conv.messages.forEach((item) => appendMessage(item, false));
    list.scrollTop = list.scrollHeight;
  }

  function appendMessage(item, scroll) {
    const list = $("messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    let li;
    if (item.kind === "system") {
      li = el("li", "msg system", item.text);
    } else {
      li = el("li", item.from === state.nick || item.from === state.wantedNick ? "msg mine" : "msg");
      li.dataset.from = item.from;
      if (item.id !== undefined) li.dataset.id = String(item.id);
      const meta = el("div", "meta");
      meta.append(el("span", "from", item.from));
      const time = el("time", "time", new Date(item.ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
      time.dateTime = new Date(item.ts).toISOString();
      meta.append(time);
      li.append(meta, el("div", "text", item.text));
    }
    list.append(li);
    if (scroll && atBottom) list.scrollTop = list.scrollHeight;
  }

  function setComposer(enabled) {
    $("text").disabled = !enabled;
    $("composer").querySelector("button").disabled = !enabled;
  }

  let toastTimer = null;
  function toast(text) {
    const node = $("toast");
    node.textContent = text;
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { node.hidden = true; }, 5000);
  }

  // ------------------------------------------------------------------ forms

  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const nick = $("nick-input").value.trim();
    if (!nick) {
      $("login-error").textContent = "a nickname cannot be empty";
      return;
    }
    state.wantedNick = nick;
    state.token = null;
    $("login-error").textContent = "";
    if (state.ws && state.ws.readyState === WebSocket.OPEN) send({ type: "hello", nick });
    else if (!state.ws) connect();
  });

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("text");
    const text = input.value.trim();
    if (!text || !state.current) return;
    const sent = state.current.startsWith("@")
      ? send({ type: "dm", to: state.current.slice(1), text })
      : send({ type: "message", room: state.current, text });
    if (sent) {
      input.value = "";
      state.lastTypingSent = 0; // the next keystroke announces typing again
    }
  });

  $("text").addEventListener("input", () => {
    const room = state.current;
    if (!room || room.startsWith("@") || !state.joined.has(room)) return;
    if (Date.now() - state.lastTypingSent < TYPING_EVERY_MS) return;
    state.lastTypingSent = Date.now();
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify({ type: "typing", room }));
    }
  });

  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const room = $("join-room").value.trim();
    if (!room) return;
    if (send({ type: "join", room })) $("join-room").value = "";
    state.current = room;
  });

  $("leave").addEventListener("click", () => {
    if (state.current && state.joined.has(state.current)) send({ type: "leave", room: state.current });
  });

  window.addEventListener("online", () => {
    if (!state.ws) connect(); // the network is back: do not wait for the backoff
  });

  // ------------------------------------------------------------------ start

  try { $("nick-input").value = localStorage.getItem("wsframe-chat-nick") || ""; } catch (err) { /* private mode */ }
  setInterval(heartbeat, HEARTBEAT_MS);
  setInterval(checkAlive, 250);
  setInterval(renderTyping, 1000);
  connect();
  window.wsframeChat = state; // for debugging and the tests
})();
