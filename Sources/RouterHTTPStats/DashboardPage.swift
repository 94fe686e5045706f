import RouterSupport

/// The dashboard served at `/`: one page with its script and style sheet beside it on the same server (no other
/// asset, machines here are offline) that reads `stats` every 2 seconds and redraws in place. Entry text only ever
/// reaches the page through `textContent`, so a message such as `<script>` shows as text; and the
/// Content-Security-Policy runs no inline script, so markup that slipped in would not run either.
enum DashboardPage {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>routerd dashboard</title>
        <link rel="stylesheet" href="dashboard.css">
        </head>
        <body>
        <header>
          <h1>routerd</h1><span class="stage" id="stage"></span>
          <span class="pill" id="status">loading</span>
          <span class="spacer"></span>
          <span id="conn"></span><span id="updated"></span>
        </header>
        <main>
          <div class="cards">
            <div class="card"><div class="label">Total received</div>
              <div class="value" id="total" data-value="0">0</div><div class="sub" id="total-sub"></div></div>
            <div class="card"><div class="label">Logs / s</div>
              <div class="value" id="rate" data-value="0">0</div><div class="sub" id="rate-sub"></div></div>
            <div class="card"><div class="label">Uptime</div>
              <div class="value" id="uptime" data-value="0">0s</div><div class="sub" id="started"></div></div>
            <div class="card"><div class="label">Errors seen</div>
              <div class="value" id="errors-seen" data-value="0">0</div><div class="sub" id="errors-sub"></div></div>
            <div class="card"><div class="label">Missing (ledger)</div>
              <div class="value" id="missing" data-value="0">0</div><div class="sub" id="missing-sub"></div></div>
          </div>
          <section id="health-section" hidden><h2>Health</h2><ul class="reasons" id="reasons"></ul></section>
          <div class="row2">
            <section><h2>Level distribution</h2><div id="levels"></div></section>
            <section><h2>Recent errors</h2><div class="scroll">
              <table><thead><tr><th>Timestamp</th><th>Level</th><th class="num">Seq</th><th>Host</th><th>App</th>
                <th>Message</th></tr></thead><tbody id="errors"></tbody></table></div></section>
          </div>
          <section><h2>Loss ledger (per sender)</h2><div class="totals" id="ledger-totals"></div><div class="scroll">
            <table><thead><tr><th>Host</th><th>App</th><th class="num">Received</th><th class="num">Missing</th>
              <th class="num">Duplicates</th><th class="num">Out of order</th><th class="num">Too old</th>
              <th class="num">Restarts</th><th class="num">Newest seq</th><th>Last seen</th></tr></thead>
              <tbody id="ledger"></tbody></table></div></section>
          <section><h2>Stages</h2>
            <table><thead><tr><th>Stage</th><th>Type</th><th>Health</th><th class="num">In</th><th class="num">Out</th>
              <th class="num">Dropped</th><th class="num">Queue</th><th>Other counters</th></tr></thead>
              <tbody id="stages"></tbody></table></section>
        </main>
        <script src="dashboard.js"></script>
        </body>
        </html>
        """#

    /// The page's style sheet, `/dashboard.css` (the Content-Security-Policy allows no inline style).
    static let style = #"""
        :root {
          --bg: #0f1419; --panel: #171d24; --line: #26303b; --text: #e6e9ed; --muted: #8b98a7;
          --ok: #3fb950; --warn: #d29922; --bad: #f85149; --accent: #58a6ff;
          --debug: #6e7781; --info: #58a6ff; --warning: #d29922; --error: #f85149; --critical: #bc4cff;
          --unknown: #4b5563;
        }
        * { box-sizing: border-box; }
        body { margin: 0; background: var(--bg); color: var(--text);
          font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
        header { display: flex; align-items: center; gap: 14px; padding: 14px 24px;
          border-bottom: 1px solid var(--line); background: var(--panel); }
        header h1 { font-size: 18px; margin: 0; font-weight: 600; letter-spacing: .2px; }
        header .stage { color: var(--muted); }
        header .spacer { flex: 1; }
        .pill { padding: 2px 10px; border-radius: 999px; font-weight: 600; font-size: 12px;
          text-transform: uppercase; letter-spacing: .5px; border: 1px solid currentColor; }
        .pill.ok { color: var(--ok); } .pill.degraded { color: var(--warn); } .pill.draining { color: var(--bad); }
        .pill.unreachable { color: var(--bad); }
        #updated, #conn { color: var(--muted); font-size: 12px; }
        #conn { color: var(--bad); }
        main { padding: 20px 24px 32px; display: grid; gap: 18px; max-width: 1400px; }
        .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 14px; }
        .card { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; }
        .card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .6px; }
        .card .value { font-size: 28px; font-weight: 650; margin-top: 4px; font-variant-numeric: tabular-nums; }
        .card .sub { color: var(--muted); font-size: 12px; }
        section { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; }
        section h2 { font-size: 13px; margin: 0 0 10px; color: var(--muted); text-transform: uppercase;
          letter-spacing: .6px; font-weight: 600; }
        .row2 { display: grid; grid-template-columns: minmax(280px, 1fr) minmax(280px, 1.4fr); gap: 18px; }
        @media (max-width: 900px) { .row2 { grid-template-columns: 1fr; } }
        .bar { display: grid; grid-template-columns: 90px 1fr 120px; align-items: center; gap: 10px; margin: 7px 0; }
        .bar .name { font-weight: 600; font-size: 12px; }
        .bar .track { height: 16px; background: #0b0f14; border-radius: 4px; overflow: hidden; }
        .bar .fill { height: 100%; border-radius: 4px; transition: width .4s ease; }
        .bar .count { text-align: right; font-variant-numeric: tabular-nums; color: var(--muted); font-size: 12px; }
        table { width: 100%; border-collapse: collapse; font-size: 13px; }
        th { text-align: left; color: var(--muted); font-weight: 600; font-size: 11px; text-transform: uppercase;
          letter-spacing: .5px; padding: 6px 8px; border-bottom: 1px solid var(--line); }
        td { padding: 6px 8px; border-bottom: 1px solid #1d252e; vertical-align: top; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        td.msg { word-break: break-word; white-space: pre-wrap; }
        td.mono, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
        td.nowrap { white-space: nowrap; }
        .lvl { font-weight: 700; font-size: 11px; }
        .bad { color: var(--bad); } .warn { color: var(--warn); } .muted { color: var(--muted); }
        .empty { color: var(--muted); font-style: italic; padding: 10px 8px; }
        .reasons { margin: 0; padding-left: 18px; color: var(--warn); }
        .scroll { max-height: 320px; overflow: auto; }
        .totals { color: var(--muted); font-size: 12px; margin-bottom: 6px; }
        .totals b { color: var(--text); font-weight: 600; }
        """#

    /// The page's script, `/dashboard.js` (the Content-Security-Policy allows no inline script).
    static let script = #"""
        'use strict';
        const LEVELS = ['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL', 'UNKNOWN'];
        const $ = (id) => document.getElementById(id);
        function el(tag, text, cls) {
          const node = document.createElement(tag);
          if (text !== undefined && text !== null) node.textContent = String(text);
          if (cls) node.className = cls;
          return node;
        }
        function row(cells) {
          const tr = document.createElement('tr');
          for (const cell of cells) tr.appendChild(cell);
          return tr;
        }
        function num(n) { return Number(n || 0).toLocaleString('en-US'); }
        function setValue(id, value, text) {
          const node = $(id);
          node.dataset.value = String(value);
          node.textContent = text;
        }
        function duration(seconds) {
          let s = Math.floor(seconds);
          const d = Math.floor(s / 86400); s -= d * 86400;
          const h = Math.floor(s / 3600); s -= h * 3600;
          const m = Math.floor(s / 60); s -= m * 60;
          if (d > 0) return d + 'd ' + h + 'h ' + m + 'm';
          if (h > 0) return h + 'h ' + m + 'm ' + s + 's';
          if (m > 0) return m + 'm ' + s + 's';
          return s + 's';
        }
        function sumValues(counter) {
          if (counter === undefined) return 0;
          if (typeof counter === 'number') return counter;
          let total = 0;
          for (const byValue of Object.values(counter)) for (const v of Object.values(byValue)) total += v;
          return total;
        }
        function empty(tbody, columns, text) {
          const td = el('td', text, 'empty');
          td.colSpan = columns;
          tbody.replaceChildren(row([td]));
        }
        function renderLevels(levels, total) {
          const rows = [];
          for (const name of LEVELS) {
            const count = levels[name] || 0;
            if (name === 'UNKNOWN' && count === 0) continue;
            const bar = el('div', null, 'bar');
            bar.id = 'level-' + name;
            bar.dataset.value = String(count);
            const label = el('span', name, 'name');
            label.style.color = 'var(--' + name.toLowerCase() + ')';
            const track = el('div', null, 'track');
            const fill = el('div', null, 'fill');
            fill.style.width = (total > 0 ? (100 * count / total) : 0).toFixed(1) + '%';
            fill.style.background = 'var(--' + name.toLowerCase() + ')';
            track.appendChild(fill);
            const pct = total > 0 ? ' (' + (100 * count / total).toFixed(1) + '%)' : '';
            bar.append(label, track, el('span', num(count) + pct, 'count'));
            rows.push(bar);
          }
          $('levels').replaceChildren(...rows);
        }
        function renderErrors(errors) {
          const tbody = $('errors');
          if (errors.entries.length === 0) return empty(tbody, 6, 'No errors yet.');
          tbody.replaceChildren(...errors.entries.map((e) => {
            const level = el('td', e.level, 'lvl');
            level.style.color = 'var(--' + (LEVELS.includes(e.level) ? e.level.toLowerCase() : 'unknown') + ')';
            return row([el('td', e.timestamp || e.received_at, 'mono nowrap'), level,
              el('td', e.sequence === null ? '' : e.sequence, 'num'), el('td', e.host, 'nowrap'),
              el('td', e.app, 'nowrap'),
              el('td', e.message, 'msg')]);
          }));
        }
        function renderLedger(ledger) {
          const t = ledger.totals;
          const parts = [['senders', ledger.senders], ['received', t.received], ['missing', t.missing],
            ['duplicates', t.duplicates], ['out of order', t.out_of_order], ['too old', t.too_old],
            ['restarts', t.restarts], ['evicted', ledger.evictions], ['no sequence', ledger.unsequenced]];
          const totals = $('ledger-totals');
          totals.replaceChildren();
          parts.forEach(([label, value], i) => {
            if (i > 0) totals.append(' · ');
            totals.append(label + ' ', el('b', num(value)));
          });
          if (ledger.shown < ledger.senders) totals.append(' · worst ' + ledger.shown + ' shown');
          const tbody = $('ledger');
          if (ledger.entries.length === 0) return empty(tbody, 10, 'No sequenced entries yet.');
          tbody.replaceChildren(...ledger.entries.map((s) => row([
            el('td', s.host, 'nowrap'), el('td', s.app, 'nowrap'), el('td', num(s.received), 'num'),
            el('td', num(s.missing), 'num' + (s.missing > 0 ? ' bad' : '')),
            el('td', num(s.duplicates), 'num' + (s.duplicates > 0 ? ' warn' : '')),
            el('td', num(s.out_of_order), 'num' + (s.out_of_order > 0 ? ' warn' : '')),
            el('td', num(s.too_old), 'num'), el('td', num(s.restarts), 'num'),
            el('td', s.newest_sequence, 'num'), el('td', s.last_seen, 'mono muted nowrap')])));
        }
        function renderStages(stages) {
          const standard = ['events_in', 'events_out', 'events_dropped'];
          $('stages').replaceChildren(...stages.map((s) => {
            const c = s.counters;
            const health = el('td', s.health.status, s.health.status === 'ok' ? '' : 'warn');
            if (s.health.reason) health.title = s.health.reason;
            const dropped = sumValues(c.events_dropped);
            // Only counters with something in them: a row of zeros hides the one that matters.
            const other = Object.keys(c).filter((k) => !standard.includes(k) && sumValues(c[k]) > 0).map((k) => {
              const v = c[k];
              if (typeof v === 'number') return k + ' ' + num(v);
              const inner = Object.values(v)[0] || {};
              const nonzero = Object.entries(inner).filter(([, n]) => n > 0);
              return k + ' ' + nonzero.map(([l, n]) => l + '=' + num(n)).join(' ');
            }).join(' · ');
            const queue = s.queue ? num(s.queue.depth) + ' / ' + num(s.queue.capacity) : '';
            return row([el('td', s.path, 'mono'), el('td', s.type), health, el('td', num(c.events_in), 'num'),
              el('td', num(sumValues(c.events_out)), 'num'),
              el('td', num(dropped), 'num' + (dropped > 0 ? ' bad' : '')),
              el('td', queue, 'num nowrap'), el('td', other, 'muted mono')]);
          }));
        }
        function render(d) {
          $('stage').textContent = 'http_stats · ' + d.stage;
          const status = $('status');
          status.textContent = d.health.status;
          status.className = 'pill ' + d.health.status;
          const reasons = d.health.reasons || [];
          $('health-section').hidden = reasons.length === 0;
          $('reasons').replaceChildren(...reasons.map((r) => el('li', r)));
          setValue('total', d.received, num(d.received));
          $('total-sub').textContent = d.invalid > 0 ? num(d.invalid) + ' invalid' : 'all valid';
          setValue('rate', d.rate_per_second, d.rate_per_second.toLocaleString('en-US', { maximumFractionDigits: 1 }));
          $('rate-sub').textContent = 'over the last ' + d.rate_window_seconds + ' s';
          setValue('uptime', d.uptime_seconds, duration(d.uptime_seconds));
          $('started').textContent = 'since ' + d.started_at;
          setValue('errors-seen', d.recent_errors.seen, num(d.recent_errors.seen));
          $('errors-sub').textContent = 'newest ' + d.recent_errors.entries.length + ' kept (of '
            + d.recent_errors.capacity + ')';
          setValue('missing', d.ledger.totals.missing, num(d.ledger.totals.missing));
          $('missing-sub').textContent = num(d.ledger.senders) + (d.ledger.senders === 1 ? ' sender' : ' senders')
            + ' followed';
          renderLevels(d.levels, d.received - d.invalid);
          renderErrors(d.recent_errors);
          renderLedger(d.ledger);
          renderStages(d.stages);
          $('updated').textContent = 'updated ' + new Date().toLocaleTimeString('en-GB');
          document.title = 'routerd · ' + num(d.received) + ' received · ' + d.health.status;
          document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
        }
        async function refresh() {
          try {
            const response = await fetch('stats', { cache: 'no-store' });
            if (!response.ok) throw new Error('HTTP ' + response.status);
            render(await response.json());
            $('conn').textContent = '';
          } catch (error) {
            $('conn').textContent = 'cannot reach routerd (' + error.message + ') ';
            $('status').textContent = 'unreachable';
            $('status').className = 'pill unreachable';
          } finally {
            setTimeout(refresh, 2000);
          }
        }
        refresh();
        """#
}
