// Following a task's events: EventSource with the cookie, resumed after any drop.

import { api, TERMINAL } from "./api.js";

const EVENTS = ["status", "progress", "retry"];

/**
 * Follow a task's SSE stream. onEvent gets each event's data once, in order;
 * onEnd gets the task (or null once it is deleted) when no more will come;
 * onPosition gets a queued task's place each time it moves (not journalled: no id).
 * A dropped connection is resumed by the browser with Last-Event-ID; one the
 * browser gives up on (an error status) is reopened here with ?last_event_id=.
 */
export function follow(taskId, { onEvent, onEnd, onState = () => {}, onPosition = () => {} }) {
  let lastId = 0;
  let source = null;
  let closed = false;
  let delay = 500;
  let atEnd = false; // a terminal event came: the stream's close is its end, not a drop

  const open = () => {
    if (closed) return;
    const query = lastId ? `?last_event_id=${lastId}` : "";
    source = new EventSource(`/tasks/${taskId}/events${query}`);
    source.onopen = () => {
      delay = 500;
      onState("live");
    };
    for (const name of EVENTS) {
      source.addEventListener(name, (message) => {
        const seq = Number(message.lastEventId);
        if (seq <= lastId) return; // never twice, whatever the transport did
        lastId = seq;
        const event = JSON.parse(message.data);
        onEvent(event);
        atEnd = TERMINAL.has(event.status) && event.type === "status";
        if (atEnd) ended();
      });
    }
    source.addEventListener("position", (message) => onPosition(JSON.parse(message.data).position));
    source.addEventListener("deleted", () => finish(null));
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) settle();
      else if (!atEnd && !closed) onState("reconnecting");
    };
  };

  // A terminal event: the end, unless the task was retried since (a replay from 0).
  const ended = async () => {
    try {
      const task = await api(`/tasks/${taskId}`);
      if (TERMINAL.has(task.status) && task.last_event_id <= lastId) finish(task);
    } catch (error) {
      if (error.status === 404) finish(null);
    }
  };

  // The browser stopped (the stream ended with 204, or an error status): ask the task.
  const settle = async () => {
    source.close();
    if (closed) return;
    try {
      const task = await api(`/tasks/${taskId}`);
      if (TERMINAL.has(task.status) && task.last_event_id <= lastId) return finish(task);
    } catch (error) {
      if (error.status === 404) return finish(null);
    }
    onState("reconnecting");
    setTimeout(open, delay);
    delay = Math.min(delay * 2, 8000);
  };

  const finish = (task) => {
    if (closed) return;
    closed = true;
    if (source) source.close();
    onEnd(task);
  };

  open();
  return {
    close() {
      closed = true;
      if (source) source.close();
    },
  };
}
