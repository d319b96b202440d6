// The ringfence operator's dashboard: polls the HTTP/JSON API of ringfenced
// (the same routes, tokens and roles as any client) and renders with DOM
// nodes and textContent only: nothing the server sends is parsed as HTML.
//
// The bearer token lives in this tab's sessionStorage and travels only in
// the Authorization header of fetch() calls: never in a URL or a cookie.
'use strict';

(function () {
  const TOKEN_KEY = 'ringfence.token';
  const POLL_MS = 2000;
  // Bounds on what one page keeps in memory, however long it stays open.
  const MAX_DECISIONS = 1000;
  const MAX_AUDIT = 1000;
  const MAX_POINTS = 500;
  const SHOWN_ROWS = 200;
  const COLORS = ['#0969da', '#8250df', '#bf3989', '#1a7f37', '#9a6700',
    '#57606a'];

  const $ = (id) => document.getElementById(id);

  // el('td', {className: 'num'}, 'text', child): attributes are set as
  // properties (markup is never parsed); strings become text nodes.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'dataset') {
        Object.assign(node.dataset, v);
      } else {
        node[k] = v;
      }
    }
    append(node, children);
    return node;
  }
  function append(node, children) {
    for (const c of children) {
      if (c === null || c === undefined) continue;
      if (Array.isArray(c)) {
        append(node, c);
      } else {
        node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
      }
    }
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  // ---- API -----------------------------------------------------------------

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
    toString() {
      return this.status + ' ' + this.code + ': ' + this.message;
    }
  }

  async function api(method, path, body) {
    const headers = {'Accept': 'application/json'};
    const t = token();
    if (t) headers['Authorization'] = 'Bearer ' + t;
    const init = {method, headers, credentials: 'omit', cache: 'no-store',
      referrerPolicy: 'no-referrer'};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'UNAVAILABLE', 'server unreachable (' + e.message + ')');
    }
    let json = null;
    try {
      json = await res.json();
    } catch (e) {
      json = null;
    }
    if (!res.ok) {
      const code = json && typeof json.code === 'string' ? json.code : 'ERROR';
      const message = json && typeof json.message === 'string' ?
        json.message : res.statusText;
      throw new ApiError(res.status, code, message);
    }
    return json || {};
  }

  // ---- Formatting ------------------------------------------------------------

  const num = (v) => (v === undefined || v === null ? 0 : Number(v));
  function fmtTime(ts) {
    if (!ts) return '';
    const d = new Date(ts);
    return isNaN(d) ? String(ts) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }
  function fmtE(v) {
    const x = num(v);
    if (x === 0) return '0';
    if (x >= 1e4 || x < 1e-3) return x.toExponential(2);
    return x.toPrecision(3);
  }
  function stageName(r, index) {
    const stages = (r.plan && r.plan.stages) || [];
    const i = num(index);
    if (i >= stages.length) return 'late-track';
    return stages[i].name || String(i);
  }
  function stateCell(state) {
    const s = state || 'ROLLOUT_STATE_UNSPECIFIED';
    return el('span', {className: 'state state-' + s}, s);
  }
  function table(headers, rows, props) {
    return el('table', props || {},
        el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
        el('tbody', {}, rows));
  }

  // ---- Status and errors ------------------------------------------------------

  function showError(err) {
    const box = $('error');
    if (!err) {
      box.hidden = true;
      box.textContent = '';
      return;
    }
    box.textContent = err instanceof ApiError ? err.toString() : String(err);
    box.hidden = false;
  }
  // An action's refusal stays up (polls do not clear it) until the next
  // action or navigation.
  function showActionResult(err) {
    const box = $('action-result');
    box.textContent = err ? (err instanceof ApiError ? err.toString() : String(err)) : '';
    box.hidden = !err;
  }
  function setStatus(text) { $('status').textContent = text; }

  // ---- Views ---------------------------------------------------------------------

  let generation = 0;  // bumped on every navigation: stale polls drop out
  let timer = null;
  let rolloutView = null;  // state of the rollout page being shown

  function route() {
    generation++;
    if (timer !== null) clearTimeout(timer);
    timer = null;
    showError(null);
    if (pending === null) showActionResult(null);
    if (token() === null) {
      $('login').hidden = false;
      $('sign-out').hidden = true;
      $('view').replaceChildren();
      $('token').focus();
      return;
    }
    $('login').hidden = true;
    $('sign-out').hidden = false;
    $('view').replaceChildren(el('p', {}, 'Loading…'));
    const m = /^#\/rollout\/(.+)$/.exec(location.hash);
    if (m) {
      let id;
      try {
        id = decodeURIComponent(m[1]);
      } catch (e) {
        id = m[1];
      }
      rolloutView = {id, decisions: [], audit: [], lastDecision: 0,
        lastAudit: 0, points: new Map()};
      poll(generation, () => refreshRollout(rolloutView));
    } else {
      rolloutView = null;
      poll(generation, refreshList);
    }
  }

  async function poll(gen, refresh) {
    if (gen !== generation) return;
    try {
      await refresh(gen);
      if (gen === generation) {
        setStatus('updated ' + new Date().toLocaleTimeString());
      }
    } catch (e) {
      if (gen !== generation) return;
      if (e instanceof ApiError && e.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        route();
        showError(e);
        return;
      }
      showError(e);
      setStatus('update failed');
    }
    if (gen === generation) timer = setTimeout(() => poll(gen, refresh), POLL_MS);
  }

  async function refreshList(gen) {
    const resp = await api('GET', '/v1/rollouts');
    const approvals = await api('GET', '/v1/approvals');
    if (gen !== generation) return;
    const rows = (resp.rollouts || []).map((r) => el('tr', {dataset: {rollout: r.id}},
        el('td', {}, el('a', {href: '#/rollout/' + encodeURIComponent(r.id)}, r.id)),
        el('td', {}, stateCell(r.state)),
        el('td', {}, num(r.stage) + ' ' + stageName(r, r.stage)),
        el('td', {}, r.releaseId || ''),
        el('td', {}, r.contentType || ''),
        el('td', {}, fmtTime(r.updatedAt)),
        el('td', {}, r.reason || '')));
    $('view').replaceChildren(
        el('h2', {}, 'Rollouts'),
        rows.length ? table(['rollout', 'state', 'stage', 'release',
          'content type', 'updated', 'reason'], rows, {id: 'rollouts'}) :
          el('p', {}, 'No rollouts.'),
        approvalsSection(approvals.requests || []));
    showError(null);
  }

  // The two-person rule's pending requests: what, by whom, until when, and
  // buttons for a second principal (the server refuses the requester).
  function approvalsSection(requests) {
    const rows = requests.map((r) => {
      const what = r.action === 'start' ?
        'start of release ' + ((r.start && r.start.releaseId) || '') :
        r.action === 'clear_emergency_stop' ? 'clear emergency stop' :
          r.action + ' of rollout ' + r.rolloutId;
      const buttons = ['approve', 'reject'].map((a) => el('button', {
        type: 'button', className: 'approval-' + a,
        textContent: a[0].toUpperCase() + a.slice(1),
        onclick: () => openDialog(
            a[0].toUpperCase() + a.slice(1) + ' request ' + r.id + ' (' + what + ')',
            '/v1/approvals/' + encodeURIComponent(r.id) + '/' + a)}));
      return el('tr', {dataset: {approval: r.id}},
          el('td', {}, r.id),
          el('td', {}, what),
          el('td', {}, r.contentType || ''),
          el('td', {}, (r.guarded || []).join(', ')),
          el('td', {}, r.requestedBy || ''),
          el('td', {}, fmtTime(r.expiresAt)),
          el('td', {}, r.reason || ''),
          el('td', {}, buttons));
    });
    return el('section', {id: 'approvals'},
        el('h2', {}, 'Waiting for approval'),
        rows.length ? table(['request', 'action', 'content type', 'rule',
          'requested by', 'expires', 'reason', ''], rows) :
          el('p', {}, 'No pending approval requests.'));
  }

  async function refreshRollout(view) {
    const gen = generation;
    const id = encodeURIComponent(view.id);
    const st = await api('GET', '/v1/rollouts/' + id +
        '?includeDecisions=true&decisionsAfterSeq=' + view.lastDecision);
    const audit = await api('GET', '/v1/audit?limit=1000&rolloutId=' + id +
        '&afterSeq=' + view.lastAudit);
    if (gen !== generation) return;
    for (const d of st.decisions || []) {
      view.decisions.push(d);
      view.lastDecision = Math.max(view.lastDecision, num(d.seq));
      addPoints(view, d.at, d.signals);
    }
    view.decisions.splice(0, Math.max(0, view.decisions.length - MAX_DECISIONS));
    for (const e of audit.entries || []) {
      view.audit.push(e);
      view.lastAudit = Math.max(view.lastAudit, num(e.seq));
    }
    view.audit.splice(0, Math.max(0, view.audit.length - MAX_AUDIT));
    const tel = st.telemetry || {};
    addPoints(view, tel.lastIngest || new Date().toISOString(), tel.signals);
    renderRollout(view, st);
    showError(null);
  }

  function addPoints(view, at, signals) {
    const t = Date.parse(at);
    if (isNaN(t)) return;
    for (const s of signals || []) {
      if (!s.signal) continue;
      let series = view.points.get(s.signal);
      if (!series) {
        series = {threshold: num(s.eThreshold), points: []};
        view.points.set(s.signal, series);
      }
      series.threshold = num(s.eThreshold) || series.threshold;
      const last = series.points[series.points.length - 1];
      if (last && last.t === t) {
        last.e = num(s.eValue);
      } else if (!last || t > last.t) {
        series.points.push({t, e: num(s.eValue)});
      }
      series.points.splice(0, Math.max(0, series.points.length - MAX_POINTS));
    }
  }

  function renderRollout(view, st) {
    const r = st.rollout || {};
    const tel = st.telemetry || {};
    const current = num(r.stage);
    const rows = [
      ['state', stateCell(r.state)],
      ['stage', current + ' ' + (st.stageName || stageName(r, current))],
      ['release', r.releaseId || ''],
      ['baseline', r.baselineReleaseId || '(none)'],
      ['content type', r.contentType || ''],
      ['reason', el('span', {id: 'rollout-reason'}, r.reason || '')],
      ['overridden', r.overridden ? 'yes' : 'no'],
      ['created', fmtTime(r.createdAt)],
      ['last telemetry', fmtTime(tel.lastIngest) || 'none since server start'],
    ].map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, v)));
    rows[0].lastChild.id = 'rollout-state';

    const actions = view.sections ? null : el('p', {className: 'actions'},
        ['pause', 'resume', 'abort', 'promote'].map((a) => el('button', {
          type: 'button', id: 'action-' + a, textContent: a[0].toUpperCase() + a.slice(1),
          onclick: () => openAction(view.id, a)})));

    const cohorts = new Map((tel.cohorts || []).map((c) => [num(c.stage), c]));
    const stages = ((r.plan && r.plan.stages) || []).map((s, i) => {
      const c = cohorts.get(i) || {};
      const p = s.pacing || {};
      const aud = s.audience || {};
      const audience = [].concat(
          (aud.labels || []).map((l) => 'label ' + l),
          aud.percent ? [aud.percent + ' %'] : []).join(', ');
      const pacing = 'initial ' + (p.initialHosts || 'default') + ', growth ' +
          (p.growthPerHealthyHost || 'default') + '/healthy host' +
          (p.maxNewHostsPerMinute ? ', max ' + p.maxNewHostsPerMinute + '/min' : '') +
          (p.healthyAfter ? ', healthy after ' + p.healthyAfter : '');
      return el('tr', {className: i === current ? 'current' : ''},
          el('td', {}, String(i)), el('td', {}, s.name || ''),
          el('td', {}, audience), el('td', {}, s.bakeTime || ''),
          el('td', {}, pacing),
          el('td', {className: 'num'}, i === current ? String(num(st.stageExposureBudget)) : ''),
          el('td', {className: 'num'}, String(num(c.exposedHosts))),
          el('td', {className: 'num'}, String(num(c.appliedHosts))),
          el('td', {className: 'num'}, String(num(c.healthyHosts))));
    });

    const signals = (tel.signals || []).map((s) => {
      const t = s.treatment || {};
      const c = s.control || {};
      return el('tr', {},
          el('td', {}, s.signal || ''),
          el('td', {className: 'num'}, num(t.affectedHosts) + ' / ' + num(t.hosts)),
          el('td', {className: 'num'}, num(c.affectedHosts) + ' / ' + num(c.hosts)),
          el('td', {className: 'num'}, fmtE(s.eValue)),
          el('td', {className: 'num'}, num(s.eThreshold) > 0 ? fmtE(s.eThreshold) : 'none'));
    });

    const decisions = view.decisions.slice(-SHOWN_ROWS).reverse().map((d) =>
      el('tr', {},
          el('td', {className: 'num'}, String(num(d.seq))),
          el('td', {}, fmtTime(d.at)),
          el('td', {}, String(num(d.stage))),
          el('td', {className: 'verdict-' + (d.verdict || '')}, d.verdict || ''),
          el('td', {}, el('div', {}, d.summary || ''),
              el('ul', {className: 'evidence'}, (d.evidence || []).map((e) =>
                el('li', {}, (e.rule ? '[' + e.rule + '] ' : '') + (e.explanation || '')))))));

    const audit = view.audit.slice(-SHOWN_ROWS).reverse().map((e) =>
      el('tr', {},
          el('td', {className: 'num'}, String(num(e.seq))),
          el('td', {}, fmtTime(e.at)),
          el('td', {}, e.actor || ''),
          el('td', {}, e.action || ''),
          el('td', {}, (e.fromState || '') + ' → ' + (e.toState || '')),
          el('td', {}, num(e.fromStage) + ' → ' + num(e.toStage)),
          el('td', {}, e.reason || '')));

    // The page's skeleton (and its buttons) is built once per rollout
    // view; each poll replaces only the sections' contents.
    if (!view.sections) {
      view.sections = {};
      const section = (id) => (view.sections[id] = el('div', {id}));
      $('view').replaceChildren(
          el('p', {}, el('a', {href: '#/'}, '← all rollouts')),
          el('h2', {}, 'Rollout ', el('span', {id: 'rollout-id'}, view.id)),
          section('summary'),
          actions,
          el('h3', {}, 'Stages'), section('stages'),
          el('h3', {}, 'Signals: exposed (treatment) vs control'),
          section('signals'),
          el('h3', {}, 'Sequential test (e-value, log scale) over time'),
          section('chart'),
          el('h3', {}, 'Decisions (newest first)'), section('decisions'),
          el('h3', {}, 'Audit trail (newest first)'), section('audit'));
    }
    const put = (id, ...children) => view.sections[id].replaceChildren(...children);
    put('summary', table([], rows));
    put('stages', table(['#', 'stage', 'audience', 'bake', 'pacing', 'budget',
      'exposed', 'applied', 'healthy'], stages));
    put('signals', signals.length ? table(['signal', 'treatment affected / hosts',
      'control affected / hosts', 'e-value', 'halt threshold'], signals) :
      el('p', {}, 'No telemetry yet.'));
    put('chart', chart(view.points));
    put('decisions', decisions.length ? table(['seq', 'at', 'stage', 'verdict',
      'evidence'], decisions) : el('p', {}, 'No decisions yet.'));
    put('audit', audit.length ? table(['seq', 'at', 'actor', 'action', 'state',
      'stage', 'reason'], audit) : el('p', {}, 'No audit entries.'));
  }

  // One line per signal of log10(e-value) over time, each against a dashed
  // line at its halt threshold.
  function chart(points) {
    const W = 720;
    const H = 240;
    const L = 48;
    const B = 20;
    const root = svg('svg', {class: 'chart', id: 'evalue-chart', width: W, height: H,
      viewBox: '0 0 ' + W + ' ' + H, role: 'img'});
    const series = [...points.entries()].filter(([, s]) => s.points.length > 0);
    if (series.length === 0) {
      root.appendChild(svg('text', {x: L, y: H / 2}, 'no e-values yet'));
      return root;
    }
    const log = (v) => Math.log10(Math.max(v, 1e-6));
    let t0 = Infinity;
    let t1 = -Infinity;
    let y0 = 0;
    let y1 = 1;
    for (const [, s] of series) {
      for (const p of s.points) {
        t0 = Math.min(t0, p.t);
        t1 = Math.max(t1, p.t);
        y0 = Math.min(y0, log(p.e));
        y1 = Math.max(y1, log(p.e));
      }
      if (s.threshold > 0) y1 = Math.max(y1, log(s.threshold));
    }
    y1 = Math.min(y1 + 0.5, 300);
    y0 = Math.max(y0, -6);
    const x = (t) => L + (t1 > t0 ? (t - t0) / (t1 - t0) : 0.5) * (W - L - 10);
    const y = (v) => H - B - (Math.min(Math.max(log(v), y0), y1) - y0) / (y1 - y0) * (H - B - 10);
    root.appendChild(svg('line', {x1: L, y1: H - B, x2: W - 10, y2: H - B, stroke: '#d0d7de'}));
    root.appendChild(svg('line', {x1: L, y1: 10, x2: L, y2: H - B, stroke: '#d0d7de'}));
    root.appendChild(svg('text', {x: 2, y: 14}, '1e' + Math.round(y1)));
    root.appendChild(svg('text', {x: 2, y: H - B}, '1e' + Math.round(y0)));
    root.appendChild(svg('text', {x: L, y: H - 4}, fmtTime(new Date(t0).toISOString())));
    root.appendChild(svg('text', {x: W - 160, y: H - 4}, fmtTime(new Date(t1).toISOString())));
    series.forEach(([name, s], i) => {
      const color = COLORS[i % COLORS.length];
      if (s.threshold > 0) {
        root.appendChild(svg('line', {class: 'threshold', x1: L, x2: W - 10,
          y1: y(s.threshold), y2: y(s.threshold)}));
      }
      const d = s.points.map((p, j) => (j ? 'L' : 'M') + x(p.t).toFixed(1) + ' ' +
          y(p.e).toFixed(1)).join(' ');
      root.appendChild(svg('path', {class: 'series', d, stroke: color}));
      root.appendChild(svg('text', {x: L + 6, y: 22 + i * 12, fill: color},
          name + (s.threshold > 0 ? ' (halt at ' + fmtE(s.threshold) + ')' : ' (no threshold)')));
    });
    return root;
  }

  // ---- Actions ---------------------------------------------------------------------

  let pending = null;  // {path} the dialog asks a reason for

  function openAction(id, action) {
    openDialog(action[0].toUpperCase() + action.slice(1) + ' rollout ' + id,
        '/v1/rollouts/' + encodeURIComponent(id) + '/' + action);
  }

  function openDialog(title, path) {
    pending = {path};
    $('action-title').textContent = title;
    $('action-reason').value = '';
    $('action-error').hidden = true;
    $('action-dialog').showModal();
    $('action-reason').focus();
  }

  async function confirmAction(event) {
    event.preventDefault();
    if (pending === null) return;
    const reason = $('action-reason').value.trim();
    if (reason === '') {
      $('action-error').textContent = 'A reason is required.';
      $('action-error').hidden = false;
      return;
    }
    const {path} = pending;
    showActionResult(null);
    $('action-confirm').disabled = true;
    try {
      const resp = await api('POST', path, {reason});
      $('action-dialog').close();
      pending = null;
      route();  // re-render now, then keep polling
      if (resp.approvalRequest) {
        // 202: held by the two-person rule; nothing happened yet.
        showActionResult('Waiting for a second principal: ' + resp.message);
      }
    } catch (e) {
      $('action-dialog').close();
      pending = null;
      showActionResult(e);
    } finally {
      $('action-confirm').disabled = false;
    }
  }

  // ---- Wiring ----------------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $('token').value);
      $('token').value = '';
      route();
    });
    $('sign-out').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      route();
    });
    $('action-form').addEventListener('submit', confirmAction);
    $('action-cancel').addEventListener('click', () => {
      pending = null;
      $('action-dialog').close();
    });
    window.addEventListener('hashchange', route);
    route();
  });
})();
