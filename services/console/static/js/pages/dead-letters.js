// #/dead-letters: messages a service refused or failed (services/console/dead_letters.py):
// how many wait per queue, a page of them with why, one in full (headers, properties, body),
// and, for admins, replay (to the queue it failed in) and discard.

import * as api from "../api.js";
import {
  closeDialogs,
  chip,
  confirmDialog,
  dialog,
  errorBox,
  fill,
  fmtAgo,
  fmtDate,
  fmtBytes,
  fmtNumber,
  h,
  heading,
  notice,
  problemText,
  replaceHash,
  selectBox,
  field,
  table,
  writeAttrs,
} from "../ui.js";

const BASE = "#/dead-letters";
const PAGE = 100;
const STATES = [
  ["waiting", "Waiting"],
  ["replayed", "Replayed"],
  ["all", "All"],
];

export async function render(root, ctx) {
  const s = {
    queue: ctx.query.get("queue") || "",
    state: STATES.some(([key]) => key === ctx.query.get("state")) ? ctx.query.get("state") : "waiting",
    afters: [0],
    index: 0,
  };
  const queues = h("div", { id: "dead-letter-queues" });
  const bulk = h("div", { class: "toolbar", id: "dead-letter-bulk" });
  const results = h("div", { id: "dead-letters-list" });
  const stateSelect = selectBox(
    {
      name: "state",
      onchange: (event) => {
        s.state = event.target.value;
        restart();
      },
    },
    STATES,
    s.state,
  );
  fill(
    root,
    heading("Dead letters"),
    h(
      "p",
      { class: "help" },
      "Messages a service refused or could not handle, kept with why. Replaying one publishes it again to the queue it failed in; discarding removes it. Fix the cause before replaying.",
      ctx.canWrite ? "" : " Replay and discard are for admins.",
    ),
    queues,
    h("form", { class: "filters", onsubmit: (event) => event.preventDefault() }, field("Show", stateSelect)),
    bulk,
    results,
  );

  function restart() {
    s.afters = [0];
    s.index = 0;
    replaceHash(BASE, { queue: s.queue, state: s.state === "waiting" ? null : s.state });
    show();
  }

  function drawQueues(found) {
    const total = found.reduce((sum, item) => sum + item.waiting, 0);
    // The queue chosen stays on the list when nothing of it waits any more.
    const counts = s.queue && !found.some((item) => item.queue === s.queue) ? [...found, { queue: s.queue, waiting: 0 }] : found;
    fill(
      queues,
      h("h2", {}, "Waiting per queue"),
      counts.length
        ? h(
            "ul",
            { class: "queue-list" },
            h(
              "li",
              {},
              h(
                "button",
                { type: "button", class: "queue", "aria-pressed": s.queue === "" ? "true" : "false", onclick: () => { s.queue = ""; restart(); } },
                `Every queue (${fmtNumber(total)})`,
              ),
            ),
            counts.map((item) =>
              h(
                "li",
                { dataset: { queue: item.queue } },
                h(
                  "button",
                  {
                    type: "button",
                    class: "queue",
                    "aria-pressed": s.queue === item.queue ? "true" : "false",
                    onclick: () => {
                      s.queue = item.queue;
                      restart();
                    },
                  },
                  h("code", {}, item.queue),
                  ` (${fmtNumber(item.waiting)})`,
                ),
              ),
            ),
          )
        : h("p", { class: "muted", id: "dead-letters-none" }, "No dead letter is waiting."),
    );
    fill(
      bulk,
      s.queue
        ? [
            h("button", writeAttrs(ctx, { type: "button", dataset: { action: "replay-queue" }, onclick: () => replayQueue() }), `Replay every waiting letter of ${s.queue}`),
            h("button", writeAttrs(ctx, { type: "button", class: "danger", dataset: { action: "discard-queue" }, onclick: () => discardQueue() }), `Discard every letter of ${s.queue}`),
          ]
        : null,
    );
  }

  let latest = 0;
  async function show() {
    const mine = ++latest;
    let page;
    try {
      page = await api.get("/dead-letters", { queue: s.queue, state: s.state, after: s.afters[s.index], limit: PAGE });
    } catch (error) {
      if (mine === latest) fill(results, errorBox(error));
      return;
    }
    if (mine !== latest) return;
    if (page.next_after !== null && page.next_after !== undefined) s.afters[s.index + 1] = page.next_after;
    drawQueues(page.queues);
    fill(
      results,
      table(
        [
          { key: "id", label: "Id", num: true, render: (d) => String(d.dead_letter_id) },
          { key: "queue", label: "Queue", render: (d) => [h("code", {}, d.queue), d.message_type ? h("div", { class: "help" }, d.message_type) : null] },
          {
            key: "reason",
            label: "Why",
            render: (d) => [chip(d.reason_class || "unknown", "bad"), " ", h("span", { class: "detail" }, d.reason.length > 240 ? `${d.reason.slice(0, 240)}…` : d.reason)],
          },
          { key: "attempts", label: "Times", num: true, render: (d) => fmtNumber(d.attempts) },
          { key: "failed", label: "Last failed", render: (d) => h("span", { title: `first ${fmtDate(d.first_failed_at)}` }, fmtAgo(d.last_failed_at)) },
          { key: "state", label: "State", render: (d) => [chip(d.state, d.state === "waiting" ? "warn" : "good"), d.replayed_at ? h("div", { class: "help" }, `replayed ${fmtAgo(d.replayed_at)}`) : null] },
          {
            key: "actions",
            label: "Actions",
            render: (d) =>
              h(
                "div",
                { class: "row-actions" },
                h("button", { type: "button", dataset: { action: "inspect" }, onclick: () => inspect(d.dead_letter_id) }, "Inspect"),
                h("button", writeAttrs(ctx, { type: "button", dataset: { action: "replay" }, disabled: d.state !== "waiting", onclick: () => replay(d) }), "Replay"),
                h("button", writeAttrs(ctx, { type: "button", class: "danger", dataset: { action: "discard" }, onclick: () => discard(d) }), "Discard"),
              ),
          },
        ],
        page.dead_letters,
        { rowId: (d) => String(d.dead_letter_id), empty: s.state === "waiting" ? "No dead letter waiting here." : "No dead letter here." },
      ),
      h(
        "div",
        { class: "pager" },
        h("button", { type: "button", disabled: s.index === 0, onclick: () => { s.index -= 1; show(); } }, "‹ Previous"),
        h("span", {}, `Page ${s.index + 1}`),
        h("button", { type: "button", disabled: page.next_after === null || page.next_after === undefined, onclick: () => { s.index += 1; show(); } }, "Next ›"),
      ),
    );
  }

  async function inspect(id) {
    let letter;
    try {
      letter = await api.get(`/dead-letters/${id}`);
    } catch (error) {
      notice(problemText(error), "error");
      return;
    }
    const props = [
      ["Queue", letter.queue],
      ["Dead-letter queue", letter.dead_letter_queue],
      ["Message id", letter.message_id],
      ["Type", letter.message_type || "unknown"],
      ["Handler", letter.handler || "–"],
      ["Why", `${letter.reason_class}: ${letter.reason}`],
      ["First published to", `${letter.original_exchange || "(default exchange)"} · ${letter.original_routing_key}`],
      ["Times dead-lettered", fmtNumber(letter.attempts)],
      ["First failed", fmtDate(letter.first_failed_at)],
      ["Last failed", fmtDate(letter.last_failed_at)],
      ["State", letter.state + (letter.replayed_at ? ` (replayed ${fmtDate(letter.replayed_at)})` : "")],
      ["Body", fmtBytes(letter.body_bytes)],
    ];
    let body = letter.body_text;
    if (body !== null && body !== undefined) {
      try {
        body = JSON.stringify(JSON.parse(body), null, 2);
      } catch {
        // not JSON: shown as it is
      }
    }
    const opened = dialog(
      `Dead letter ${letter.dead_letter_id}`,
      h(
        "div",
        { id: "dead-letter" },
        h("dl", { class: "props" }, props.map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)])),
        h("h3", {}, "Body"),
        body !== null && body !== undefined
          ? h("pre", { class: "json" }, body)
          : h("p", { class: "muted" }, `Not text; base64: ${letter.body_base64.slice(0, 400)}${letter.body_base64.length > 400 ? "…" : ""}`),
        h("h3", {}, "Headers"),
        h("pre", { class: "json" }, JSON.stringify(letter.headers, null, 2)),
        h("h3", {}, "Properties"),
        h("pre", { class: "json" }, JSON.stringify(letter.properties, null, 2)),
      ),
      [
        {
          label: "Replay",
          kind: "primary",
          id: "replay",
          disabled: !ctx.canWrite || letter.state !== "waiting",
          onclick: (close) => {
            close();
            replay(letter);
          },
        },
        {
          label: "Discard",
          kind: "danger",
          id: "discard",
          disabled: !ctx.canWrite,
          onclick: (close) => {
            close();
            discard(letter);
          },
        },
      ],
      { wide: true },
    );
    return opened;
  }

  async function replay(letter) {
    const ok = await confirmDialog(
      `Replay dead letter ${letter.dead_letter_id}?`,
      `It is published again to ${letter.queue}, the queue it failed in. If the cause is not fixed, it fails and comes back here.`,
      "Replay",
    );
    if (!ok) return;
    try {
      const result = await api.post(`/dead-letters/${letter.dead_letter_id}/replay`, {});
      if (result.failed.length) notice(`Not replayed: ${result.failed.map((f) => f.error).join("; ")}`, "error");
      else notice(`Dead letter ${letter.dead_letter_id} replayed to ${letter.queue}.`, "ok");
    } catch (error) {
      notice(problemText(error), "error");
    }
    show();
  }

  async function discard(letter) {
    const ok = await confirmDialog(
      `Discard dead letter ${letter.dead_letter_id}?`,
      "The message is removed for good; it cannot be replayed afterwards.",
      "Discard",
      { danger: true },
    );
    if (!ok) return;
    try {
      await api.del(`/dead-letters/${letter.dead_letter_id}`);
      notice(`Dead letter ${letter.dead_letter_id} discarded.`, "ok");
    } catch (error) {
      notice(problemText(error), "error");
    }
    show();
  }

  async function replayQueue() {
    const queue = s.queue;
    const ok = await confirmDialog(
      `Replay every waiting dead letter of ${queue}?`,
      "Each is published again to the queue it failed in; a replay of many stops at the first broker failure.",
      "Replay all",
    );
    if (!ok) return;
    try {
      const result = await api.post("/dead-letters/replay", { queue });
      notice(
        `${result.replayed.length} replayed${result.failed.length ? `, ${result.failed.length} not: ${result.failed[0].error}` : ""}.`,
        result.failed.length ? "error" : "ok",
      );
    } catch (error) {
      notice(problemText(error), "error");
    }
    restart();
  }

  async function discardQueue() {
    const queue = s.queue;
    const ok = await confirmDialog(
      `Discard every dead letter of ${queue}?`,
      "Every dead letter of this queue, waiting or replayed, is removed for good.",
      "Discard all",
      { danger: true },
    );
    if (!ok) return;
    try {
      const result = await api.del("/dead-letters", { queue });
      notice(`${result.purged} dead letter${result.purged === 1 ? "" : "s"} discarded.`, "ok");
    } catch (error) {
      notice(problemText(error), "error");
    }
    restart();
  }

  await show();
  return closeDialogs;
}
