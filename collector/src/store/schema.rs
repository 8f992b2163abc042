//! The SQLite schema (DESIGN §6) and its versioned migrations.
//!
//! Migrations are applied at start, in order, each in its own transaction,
//! and `PRAGMA user_version` records how many have run. Never edit a released
//! migration: append a new one.

use std::time::{Duration, Instant};

use rusqlite::Connection;

/// Migration 17's `SET` and `WHERE` that add the row `new` to its model's
/// `usage_models` row (shared by the insert and update triggers).
macro_rules! usage_models_add {
    () => {
        r#"
            input_tokens = input_tokens + new.input_tokens,
            output_tokens = output_tokens + new.output_tokens,
            cache_write_5m_tokens = cache_write_5m_tokens + new.cache_write_5m_tokens,
            cache_write_1h_tokens = cache_write_1h_tokens + new.cache_write_1h_tokens,
            cache_read_tokens = cache_read_tokens + new.cache_read_tokens,
            cost_error = CASE WHEN new.cost_usd IS NULL THEN cost_error
                WHEN abs(cost_sum) > abs(new.cost_usd) THEN cost_error + ((cost_sum - (cost_sum + new.cost_usd)) + new.cost_usd)
                ELSE cost_error + ((new.cost_usd - (cost_sum + new.cost_usd)) + cost_sum) END,
            cost_sum = CASE WHEN new.cost_usd IS NULL THEN cost_sum ELSE cost_sum + new.cost_usd END,
            priced = priced + (new.cost_usd IS NOT NULL),
            unpriced = unpriced + (new.cost_usd IS NULL)
        WHERE model = new.model;
"#
    };
}

/// Migration 17's `SET` and `WHERE` that take the row `old` out of its
/// model's `usage_models` row, and the delete of a model left empty.
macro_rules! usage_models_remove {
    () => {
        r#"
            input_tokens = input_tokens - old.input_tokens,
            output_tokens = output_tokens - old.output_tokens,
            cache_write_5m_tokens = cache_write_5m_tokens - old.cache_write_5m_tokens,
            cache_write_1h_tokens = cache_write_1h_tokens - old.cache_write_1h_tokens,
            cache_read_tokens = cache_read_tokens - old.cache_read_tokens,
            cost_error = CASE WHEN old.cost_usd IS NULL THEN cost_error WHEN priced = 1 THEN 0.0
                WHEN abs(cost_sum) > abs(old.cost_usd) THEN cost_error + ((cost_sum - (cost_sum - old.cost_usd)) - old.cost_usd)
                ELSE cost_error + ((-old.cost_usd - (cost_sum - old.cost_usd)) + cost_sum) END,
            cost_sum = CASE WHEN old.cost_usd IS NULL THEN cost_sum WHEN priced = 1 THEN 0.0 ELSE cost_sum - old.cost_usd END,
            priced = priced - (old.cost_usd IS NOT NULL),
            unpriced = unpriced - (old.cost_usd IS NULL)
        WHERE model = old.model;
        DELETE FROM usage_models WHERE model = old.model AND priced = 0 AND unpriced = 0;
"#
    };
}

/// Each entry is one migration; `user_version` = number applied.
const MIGRATIONS: &[&str] = &[
    // 1: events, sessions, agents, the tool_calls view.
    r#"
    CREATE TABLE events (
        seq         INTEGER PRIMARY KEY,
        id          TEXT NOT NULL UNIQUE,
        ts          INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        machine     TEXT NOT NULL,
        session_id  TEXT,
        agent_id    TEXT,
        hook        TEXT NOT NULL,
        tool        TEXT,
        tool_use_id TEXT,
        cwd         TEXT,
        source      TEXT NOT NULL,
        payload     TEXT NOT NULL
    );
    CREATE INDEX events_session_seq ON events(session_id, seq);
    CREATE INDEX events_tool_use_id ON events(tool_use_id) WHERE tool_use_id IS NOT NULL;
    CREATE INDEX events_ts ON events(ts);

    CREATE TABLE sessions (
        session_id      TEXT PRIMARY KEY,
        machine         TEXT NOT NULL,
        cwd             TEXT,
        first_ts        INTEGER NOT NULL,
        last_ts         INTEGER NOT NULL,
        ended_ts        INTEGER,
        end_reason      TEXT,
        event_count     INTEGER NOT NULL DEFAULT 0,
        transcript_path TEXT,
        last_seq        INTEGER
    );
    CREATE INDEX sessions_last_ts ON sessions(last_ts);

    CREATE TABLE agents (
        agent_id             TEXT PRIMARY KEY,
        session_id           TEXT NOT NULL,
        agent_type           TEXT,
        parent_tool_use_id   TEXT,
        started_ts           INTEGER,
        stopped_ts           INTEGER,
        event_count          INTEGER NOT NULL DEFAULT 0,
        transcript_path      TEXT
    );
    CREATE INDEX agents_session ON agents(session_id);

    CREATE VIEW tool_calls AS
    SELECT
        pre.seq                      AS seq,
        pre.session_id               AS session_id,
        pre.agent_id                 AS agent_id,
        pre.machine                  AS machine,
        pre.tool                     AS tool,
        pre.tool_use_id              AS tool_use_id,
        pre.ts                       AS started_ts,
        post.ts                      AS finished_ts,
        COALESCE(json_extract(post.payload, '$.duration_ms'), post.ts - pre.ts) AS duration_ms,
        CASE post.hook
            WHEN 'PostToolUse' THEN 'ok'
            WHEN 'PostToolUseFailure' THEN 'failed'
            ELSE 'pending'
        END                          AS outcome,
        json_extract(post.payload, '$.error') AS error
    FROM events AS pre
    LEFT JOIN events AS post
        ON post.tool_use_id = pre.tool_use_id
       AND post.hook IN ('PostToolUse', 'PostToolUseFailure')
    WHERE pre.hook = 'PreToolUse';
    "#,
    // 2: events per minute, hook and machine, kept by the writer with each
    // batch, so /api/stats reads a few rows per minute instead of every event
    // (the page polls the last hour all day).
    r#"
    CREATE TABLE event_counts (
        minute  INTEGER NOT NULL,
        hook    TEXT NOT NULL,
        machine TEXT NOT NULL,
        count   INTEGER NOT NULL,
        PRIMARY KEY (minute, hook, machine)
    ) WITHOUT ROWID;
    INSERT INTO event_counts (minute, hook, machine, count)
        SELECT (ts / 60000) * 60000, hook, machine, count(*) FROM events GROUP BY 1, 2, 3;
    "#,
    // 3: what each session and agent is doing (state), what it cost (usage),
    // and the columns people filter and join on (prompt_id, permission_mode).
    r#"
    ALTER TABLE events ADD COLUMN prompt_id TEXT;
    ALTER TABLE events ADD COLUMN permission_mode TEXT;
    ALTER TABLE events ADD COLUMN redactions TEXT;
    UPDATE events SET
        prompt_id = json_extract(payload, '$.prompt_id'),
        permission_mode = json_extract(payload, '$.permission_mode')
    WHERE json_valid(payload) AND json_type(payload) = 'object';
    CREATE INDEX events_prompt_id ON events(prompt_id) WHERE prompt_id IS NOT NULL;
    CREATE INDEX events_permission_mode ON events(permission_mode) WHERE permission_mode IS NOT NULL;

    ALTER TABLE sessions ADD COLUMN state TEXT;
    ALTER TABLE sessions ADD COLUMN state_since INTEGER;
    ALTER TABLE sessions ADD COLUMN state_detail TEXT;
    ALTER TABLE sessions ADD COLUMN current_tool TEXT;
    ALTER TABLE sessions ADD COLUMN model TEXT;
    ALTER TABLE sessions ADD COLUMN title TEXT;
    ALTER TABLE sessions ADD COLUMN permission_mode TEXT;
    UPDATE sessions SET
        state = CASE WHEN ended_ts IS NOT NULL THEN 'ended' ELSE 'idle' END,
        state_since = COALESCE(ended_ts, last_ts),
        state_detail = end_reason;
    CREATE INDEX sessions_state ON sessions(state);

    ALTER TABLE agents ADD COLUMN state TEXT;
    ALTER TABLE agents ADD COLUMN state_since INTEGER;
    ALTER TABLE agents ADD COLUMN state_detail TEXT;
    ALTER TABLE agents ADD COLUMN current_tool TEXT;
    ALTER TABLE agents ADD COLUMN prompt_id TEXT;
    UPDATE agents SET
        state = CASE WHEN stopped_ts IS NOT NULL THEN 'ended' ELSE 'working' END,
        state_since = COALESCE(stopped_ts, started_ts);

    CREATE TABLE usage (
        key                   TEXT PRIMARY KEY,
        message_id            TEXT NOT NULL,
        request_id            TEXT,
        session_id            TEXT,
        agent_id              TEXT,
        prompt_id             TEXT,
        machine               TEXT,
        cwd                   TEXT,
        model                 TEXT NOT NULL,
        ts                    INTEGER,
        input_tokens          INTEGER NOT NULL DEFAULT 0,
        output_tokens         INTEGER NOT NULL DEFAULT 0,
        cache_write_5m_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens     INTEGER NOT NULL DEFAULT 0,
        web_search_requests   INTEGER NOT NULL DEFAULT 0,
        inference_geo         TEXT,
        speed                 TEXT,
        cost_usd              REAL,
        price_version         TEXT,
        origin                TEXT NOT NULL,
        event_id              TEXT
    ) WITHOUT ROWID;
    CREATE INDEX usage_session ON usage(session_id);
    CREATE INDEX usage_prompt ON usage(prompt_id) WHERE prompt_id IS NOT NULL;
    CREATE INDEX usage_agent ON usage(agent_id) WHERE agent_id IS NOT NULL;
    CREATE INDEX usage_ts ON usage(ts);

    CREATE VIEW prompts AS
    SELECT
        submit.prompt_id                                   AS prompt_id,
        submit.session_id                                  AS session_id,
        submit.machine                                     AS machine,
        submit.cwd                                         AS cwd,
        json_extract(submit.payload, '$.prompt')           AS prompt,
        submit.ts                                          AS started_ts,
        (SELECT MIN(done.ts) FROM events AS done
          WHERE done.prompt_id = submit.prompt_id AND done.agent_id IS NULL
            AND done.hook IN ('Stop', 'StopFailure', 'SessionEnd'))       AS ended_ts,
        (SELECT done.hook FROM events AS done
          WHERE done.prompt_id = submit.prompt_id AND done.agent_id IS NULL
            AND done.hook IN ('Stop', 'StopFailure', 'SessionEnd')
          ORDER BY done.ts LIMIT 1)                        AS outcome,
        (SELECT json_extract(done.payload, '$.error') FROM events AS done
          WHERE done.prompt_id = submit.prompt_id AND done.hook = 'StopFailure'
          LIMIT 1)                                         AS error,
        (SELECT COUNT(*) FROM events AS call
          WHERE call.prompt_id = submit.prompt_id AND call.hook = 'PreToolUse') AS tool_calls,
        (SELECT COUNT(*) FROM events AS call
          WHERE call.prompt_id = submit.prompt_id AND call.hook = 'PostToolUseFailure') AS tool_failures,
        (SELECT SUM(cost_usd) FROM usage WHERE usage.prompt_id = submit.prompt_id) AS cost_usd,
        (SELECT SUM(input_tokens + output_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens)
           FROM usage WHERE usage.prompt_id = submit.prompt_id) AS tokens
    FROM events AS submit
    WHERE submit.hook = 'UserPromptSubmit' AND submit.prompt_id IS NOT NULL;
    "#,
    // 4: what the transcripts say happened (tool_use ids and subagent ids per
    // session), from the emitter's usage reads and from the import, which
    // the completeness check compares with the hook events; and the lookup
    // the import does before each session (does it have live events?).
    r#"
    CREATE TABLE transcript_ids (
        session_id TEXT NOT NULL,
        kind       TEXT NOT NULL,
        item_id    TEXT NOT NULL,
        PRIMARY KEY (session_id, kind, item_id)
    ) WITHOUT ROWID;
    "#,
    // 5: instant search and indexed filters. `events_fts` is a contentless
    // trigram index (substring search) of each event's searchable text (see
    // `search.rs`), keyed by `events.seq`; the writer filled it in the same
    // transaction as the event (since 13, store/indexer.rs follows the
    // writer), a trigger empties it as events are deleted,
    // and [`backfill_search`] fills it for the events already stored. The
    // (column, seq) indexes serve every filter in `seq` order, so a rare
    // hook, tool, machine or agent no longer scans the table; the covering
    // usage index sums and sorts sessions' cost and tokens without reading
    // usage rows.
    r#"
    CREATE VIRTUAL TABLE events_fts USING fts5(text, content='', contentless_delete=1, tokenize='trigram');
    CREATE TRIGGER events_fts_delete AFTER DELETE ON events BEGIN
        DELETE FROM events_fts WHERE rowid = old.seq;
    END;
    CREATE INDEX events_hook_seq ON events(hook, seq);
    CREATE INDEX events_tool_seq ON events(tool, seq) WHERE tool IS NOT NULL;
    CREATE INDEX events_machine_seq ON events(machine, seq);
    CREATE INDEX events_agent_seq ON events(agent_id, seq) WHERE agent_id IS NOT NULL;
    CREATE INDEX usage_session_totals ON usage(session_id, cost_usd, input_tokens, output_tokens,
        cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens);
    "#,
    // 6: running totals on each session row (cost, tokens, responses,
    // agents), kept by triggers in the writer's transaction, so the session
    // list reads one row per session instead of summing `usage` and counting
    // `agents` for each (and sorts by cost without a subquery per session).
    // Inserts and deletes add and subtract; a session row created after its
    // usage (an import, a late SessionStart) is summed once, exactly.
    r#"
    ALTER TABLE sessions ADD COLUMN total_cost_usd REAL NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN total_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN usage_responses INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN unpriced_responses INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN agent_count INTEGER NOT NULL DEFAULT 0;

    CREATE TRIGGER sessions_totals_usage_insert AFTER INSERT ON usage
    WHEN new.session_id IS NOT NULL BEGIN
        UPDATE sessions SET
            total_cost_usd = total_cost_usd + COALESCE(new.cost_usd, 0),
            total_tokens = total_tokens + new.input_tokens + new.output_tokens
                + new.cache_write_5m_tokens + new.cache_write_1h_tokens + new.cache_read_tokens,
            usage_responses = usage_responses + 1,
            unpriced_responses = unpriced_responses + (new.cost_usd IS NULL)
        WHERE session_id = new.session_id;
    END;
    CREATE TRIGGER sessions_totals_usage_delete AFTER DELETE ON usage
    WHEN old.session_id IS NOT NULL BEGIN
        UPDATE sessions SET
            total_cost_usd = total_cost_usd - COALESCE(old.cost_usd, 0),
            total_tokens = total_tokens - (old.input_tokens + old.output_tokens
                + old.cache_write_5m_tokens + old.cache_write_1h_tokens + old.cache_read_tokens),
            usage_responses = usage_responses - 1,
            unpriced_responses = unpriced_responses - (old.cost_usd IS NULL)
        WHERE session_id = old.session_id;
    END;
    CREATE TRIGGER sessions_totals_usage_update AFTER UPDATE ON usage BEGIN
        UPDATE sessions SET
            total_cost_usd = total_cost_usd - COALESCE(old.cost_usd, 0),
            total_tokens = total_tokens - (old.input_tokens + old.output_tokens
                + old.cache_write_5m_tokens + old.cache_write_1h_tokens + old.cache_read_tokens),
            usage_responses = usage_responses - 1,
            unpriced_responses = unpriced_responses - (old.cost_usd IS NULL)
        WHERE session_id = old.session_id;
        UPDATE sessions SET
            total_cost_usd = total_cost_usd + COALESCE(new.cost_usd, 0),
            total_tokens = total_tokens + new.input_tokens + new.output_tokens
                + new.cache_write_5m_tokens + new.cache_write_1h_tokens + new.cache_read_tokens,
            usage_responses = usage_responses + 1,
            unpriced_responses = unpriced_responses + (new.cost_usd IS NULL)
        WHERE session_id = new.session_id;
    END;
    CREATE TRIGGER sessions_totals_agents_insert AFTER INSERT ON agents BEGIN
        UPDATE sessions SET agent_count = agent_count + 1 WHERE session_id = new.session_id;
    END;
    CREATE TRIGGER sessions_totals_agents_delete AFTER DELETE ON agents BEGIN
        UPDATE sessions SET agent_count = agent_count - 1 WHERE session_id = old.session_id;
    END;
    CREATE TRIGGER sessions_totals_agents_update AFTER UPDATE OF session_id ON agents BEGIN
        UPDATE sessions SET agent_count = agent_count - 1 WHERE session_id = old.session_id;
        UPDATE sessions SET agent_count = agent_count + 1 WHERE session_id = new.session_id;
    END;
    CREATE TRIGGER sessions_totals_session_insert AFTER INSERT ON sessions BEGIN
        UPDATE sessions SET
            (total_cost_usd, total_tokens, usage_responses, unpriced_responses) = (
                SELECT COALESCE(SUM(cost_usd), 0),
                       COALESCE(SUM(input_tokens + output_tokens + cache_write_5m_tokens
                           + cache_write_1h_tokens + cache_read_tokens), 0),
                       COUNT(*), COALESCE(SUM(cost_usd IS NULL), 0)
                FROM usage WHERE usage.session_id = new.session_id),
            agent_count = (SELECT COUNT(*) FROM agents WHERE agents.session_id = new.session_id)
        WHERE session_id = new.session_id;
    END;
    UPDATE sessions SET
        (total_cost_usd, total_tokens, usage_responses, unpriced_responses) = (
            SELECT COALESCE(SUM(cost_usd), 0),
                   COALESCE(SUM(input_tokens + output_tokens + cache_write_5m_tokens
                       + cache_write_1h_tokens + cache_read_tokens), 0),
                   COUNT(*), COALESCE(SUM(cost_usd IS NULL), 0)
            FROM usage WHERE usage.session_id = sessions.session_id),
        agent_count = (SELECT COUNT(*) FROM agents WHERE agents.session_id = sessions.session_id);
    CREATE INDEX sessions_cost ON sessions(total_cost_usd);
    "#,
    // 7: events whose emitter had a config error (envelope `config_error`;
    // privacy fell back to `metadata`). 1 when flagged, else NULL; the
    // partial index holds only flagged events, so a session's flag is one
    // index probe and costs nothing while every config is fine.
    r#"
    ALTER TABLE events ADD COLUMN config_error INTEGER;
    CREATE INDEX events_config_error ON events(session_id) WHERE config_error = 1;
    "#,
    // 8: the views join by session as well as by id, and say which index
    // serves them; impossible token counts are gone. A forked or resumed
    // session's transcript repeats the earlier conversation, so two
    // sessions can share tool_use ids and prompt ids: an id alone would mix
    // their calls. Each correlated subquery of `prompts` names the
    // `prompt_id` index and the outer scans keep `hook` out of the index
    // choice (`+hook`): without statistics the planner otherwise walked
    // `events_hook_seq`, every PreToolUse of the database once per prompt
    // (seconds for a long session). Usage rows with a token count beyond
    // [`MAX_TOKENS_PER_KIND`](crate::cost::MAX_TOKENS_PER_KIND) (u64::MAX
    // stored as -1, 2^63-1) broke every route that sums them: they are
    // deleted, and the running totals of the sessions they touched are
    // summed again.
    r#"
    DROP VIEW tool_calls;
    CREATE VIEW tool_calls AS
    SELECT
        pre.seq                      AS seq,
        pre.session_id               AS session_id,
        pre.agent_id                 AS agent_id,
        pre.machine                  AS machine,
        pre.tool                     AS tool,
        pre.tool_use_id              AS tool_use_id,
        pre.ts                       AS started_ts,
        post.ts                      AS finished_ts,
        COALESCE(json_extract(post.payload, '$.duration_ms'), post.ts - pre.ts) AS duration_ms,
        CASE post.hook
            WHEN 'PostToolUse' THEN 'ok'
            WHEN 'PostToolUseFailure' THEN 'failed'
            ELSE 'pending'
        END                          AS outcome,
        json_extract(post.payload, '$.error') AS error
    FROM events AS pre
    LEFT JOIN events AS post INDEXED BY events_tool_use_id
        ON post.tool_use_id = pre.tool_use_id
       AND post.session_id IS pre.session_id
       AND post.hook IN ('PostToolUse', 'PostToolUseFailure')
    WHERE +pre.hook = 'PreToolUse';

    DROP VIEW prompts;
    CREATE VIEW prompts AS
    SELECT
        submit.prompt_id                                   AS prompt_id,
        submit.session_id                                  AS session_id,
        submit.machine                                     AS machine,
        submit.cwd                                         AS cwd,
        json_extract(submit.payload, '$.prompt')           AS prompt,
        submit.ts                                          AS started_ts,
        (SELECT MIN(done.ts) FROM events AS done INDEXED BY events_prompt_id
          WHERE done.prompt_id = submit.prompt_id AND done.session_id IS submit.session_id
            AND done.agent_id IS NULL AND done.hook IN ('Stop', 'StopFailure', 'SessionEnd')) AS ended_ts,
        (SELECT done.hook FROM events AS done INDEXED BY events_prompt_id
          WHERE done.prompt_id = submit.prompt_id AND done.session_id IS submit.session_id
            AND done.agent_id IS NULL AND done.hook IN ('Stop', 'StopFailure', 'SessionEnd')
          ORDER BY done.ts LIMIT 1)                        AS outcome,
        (SELECT json_extract(done.payload, '$.error') FROM events AS done INDEXED BY events_prompt_id
          WHERE done.prompt_id = submit.prompt_id AND done.session_id IS submit.session_id
            AND done.hook = 'StopFailure'
          LIMIT 1)                                         AS error,
        (SELECT COUNT(*) FROM events AS call INDEXED BY events_prompt_id
          WHERE call.prompt_id = submit.prompt_id AND call.session_id IS submit.session_id
            AND call.hook = 'PreToolUse')                  AS tool_calls,
        (SELECT COUNT(*) FROM events AS call INDEXED BY events_prompt_id
          WHERE call.prompt_id = submit.prompt_id AND call.session_id IS submit.session_id
            AND call.hook = 'PostToolUseFailure')          AS tool_failures,
        (SELECT SUM(cost_usd) FROM usage INDEXED BY usage_prompt
          WHERE usage.prompt_id = submit.prompt_id AND usage.session_id IS submit.session_id) AS cost_usd,
        (SELECT CASE WHEN COUNT(*) > 0 THEN CAST(TOTAL(input_tokens + output_tokens + cache_write_5m_tokens
                + cache_write_1h_tokens + cache_read_tokens) AS INTEGER) END
           FROM usage INDEXED BY usage_prompt
          WHERE usage.prompt_id = submit.prompt_id AND usage.session_id IS submit.session_id) AS tokens
    FROM events AS submit
    WHERE +submit.hook = 'UserPromptSubmit' AND submit.prompt_id IS NOT NULL;

    DELETE FROM usage WHERE NOT (
        input_tokens BETWEEN 0 AND 10000000 AND output_tokens BETWEEN 0 AND 10000000
        AND cache_write_5m_tokens BETWEEN 0 AND 10000000 AND cache_write_1h_tokens BETWEEN 0 AND 10000000
        AND cache_read_tokens BETWEEN 0 AND 10000000 AND web_search_requests BETWEEN 0 AND 10000);
    UPDATE sessions SET
        (total_cost_usd, total_tokens, usage_responses, unpriced_responses) = (
            SELECT COALESCE(SUM(cost_usd), 0),
                   COALESCE(SUM(input_tokens + output_tokens + cache_write_5m_tokens
                       + cache_write_1h_tokens + cache_read_tokens), 0),
                   COUNT(*), COALESCE(SUM(cost_usd IS NULL), 0)
            FROM usage WHERE usage.session_id = sessions.session_id)
    WHERE typeof(total_tokens) != 'integer' OR total_tokens < 0 OR typeof(total_cost_usd) != 'real'
       OR total_cost_usd < 0 OR total_cost_usd > 1e9;
    "#,
    // 9: alerts (issue 20): the outbox. The writer inserts an alert in the
    // transaction of the state change that raised it (`store/outbox.rs`);
    // the notifier threads update its delivery columns. UNIQUE(destination,
    // rule, episode) makes an alert once per episode; `delivery_id` is the
    // receiver's idempotency key, the same on every retry.
    r#"
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        delivery_id     TEXT NOT NULL UNIQUE,
        destination     TEXT NOT NULL,
        rule            TEXT NOT NULL,
        episode         TEXT NOT NULL,
        session_id      TEXT,
        body            TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        state           TEXT NOT NULL DEFAULT 'pending',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT,
        sent_at         INTEGER,
        answer          TEXT,
        UNIQUE (destination, rule, episode)
    );
    CREATE INDEX outbox_delivery ON outbox(destination, state, id);
    "#,
    // Remote approval (issue 18): one row per PermissionRequest whose hook
    // waits (pending while verdict IS NULL and expires_at is ahead), decided
    // once (the conditional UPDATE in store::decisions), with who decided
    // and whether the hook took it; and the away switch per machine ('*' =
    // every machine).
    r#"
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL DEFAULT 'permission',
        session_id TEXT,
        machine TEXT,
        tool TEXT,
        input_hash TEXT,
        verdict TEXT,
        reason TEXT,
        decided_by TEXT,
        requested_at INTEGER NOT NULL,
        decided_at INTEGER,
        expires_at INTEGER NOT NULL,
        delivered TEXT
    );
    CREATE INDEX decisions_pending ON decisions(expires_at) WHERE verdict IS NULL;
    CREATE INDEX decisions_decided ON decisions(decided_at) WHERE verdict IS NOT NULL;
    CREATE TABLE away (
        machine TEXT PRIMARY KEY,
        "on" INTEGER NOT NULL,
        since INTEGER NOT NULL
    );
    "#,
    // budgets: what approvers granted on top of a budget (issue 19). The
    // audit trail of who granted it is the decisions table's.
    r#"
    CREATE TABLE budget_grants (
        id           INTEGER PRIMARY KEY,
        budget       TEXT NOT NULL,
        subject      TEXT NOT NULL,
        window_start INTEGER NOT NULL,
        usd          REAL NOT NULL CHECK (usd > 0),
        granted_by   TEXT NOT NULL,
        reason       TEXT,
        granted_at   INTEGER NOT NULL
    );
    CREATE INDEX budget_grants_budget ON budget_grants(budget, subject, window_start);
    "#,
    // 12: Claude Code's own OpenTelemetry (issue 22, otlp/ and store/otel.rs).
    // `otel_events` holds its log events with their attributes (JSON), keyed
    // by a content hash so an exporter's retry stores nothing twice;
    // `otel_metric_points` its sum and gauge points by session and UTC day.
    // `usage.otel_cost_usd` is Claude Code's `cost_usd` for the response
    // (hooktrail's own price stays in `cost_usd`). An `api_request` with no
    // usage row of the same `request_id` yet gets a row of origin `otel`;
    // the trigger retires that row when the transcript's row for the
    // request arrives, carrying the OTel cost over, so the session totals
    // (migration 6's triggers) count the response once.
    r#"
    CREATE TABLE otel_events (
        id          INTEGER PRIMARY KEY,
        key         TEXT NOT NULL UNIQUE,
        name        TEXT NOT NULL,
        ts          INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        session_id  TEXT,
        prompt_id   TEXT,
        request_id  TEXT,
        tool_use_id TEXT,
        duration_ms REAL,
        cost_usd    REAL,
        attrs       TEXT NOT NULL
    );
    CREATE INDEX otel_events_session ON otel_events(session_id, ts);
    CREATE INDEX otel_events_prompt ON otel_events(prompt_id) WHERE prompt_id IS NOT NULL;
    CREATE INDEX otel_events_request ON otel_events(request_id) WHERE request_id IS NOT NULL;
    CREATE INDEX otel_events_ts ON otel_events(ts);
    CREATE TABLE otel_metric_points (
        key         TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        session_id  TEXT,
        day         TEXT NOT NULL,
        ts          INTEGER NOT NULL,
        start_ts    INTEGER,
        kind        TEXT,
        value       REAL NOT NULL,
        temporality TEXT NOT NULL,
        attrs       TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX otel_metric_points_day ON otel_metric_points(day, name);
    CREATE INDEX otel_metric_points_session ON otel_metric_points(session_id, name);
    ALTER TABLE usage ADD COLUMN otel_cost_usd REAL;
    CREATE INDEX usage_request ON usage(request_id) WHERE request_id IS NOT NULL;
    CREATE TRIGGER usage_otel_retired AFTER INSERT ON usage
    WHEN new.origin != 'otel' AND new.request_id IS NOT NULL BEGIN
        UPDATE usage SET otel_cost_usd = (
                SELECT retired.otel_cost_usd FROM usage AS retired
                 WHERE retired.request_id = new.request_id AND retired.origin = 'otel' LIMIT 1)
         WHERE key = new.key AND otel_cost_usd IS NULL AND EXISTS (
                SELECT 1 FROM usage AS retired
                 WHERE retired.request_id = new.request_id AND retired.origin = 'otel');
        DELETE FROM usage WHERE request_id = new.request_id AND origin = 'otel';
    END;
    "#,
    // 13: the search index follows the writer (issue 21, store/indexer.rs).
    // `search_index_mark.indexed_seq` is the high-water mark: every event up
    // to it is in `events_fts`, none past it. Every event stored so far was
    // indexed in its own transaction, so the mark starts at the newest.
    r#"
    CREATE TABLE IF NOT EXISTS search_index_mark (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        indexed_seq INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO search_index_mark (id, indexed_seq) SELECT 1, COALESCE(MAX(seq), 0) FROM events;
    "#,
    // 14: cost per UTC day, model, project (cwd) and machine, kept by
    // triggers on `usage` in the writer's transaction (as migration 6 keeps
    // the session totals), so `/api/stats` reads a few rows per day instead
    // of grouping a month of usage rows (issue 21). `cost_sum` and
    // `cost_error` are a Kahan-Babuska-Neumaier sum, the one SQLite's SUM
    // keeps, so `cost_sum + cost_error` is what SUM(cost_usd) over the
    // group's rows gives; `priced` counts the rows with a cost (none: the
    // cost is NULL, as SUM's). Rows without a time, or before 1970, are in
    // no day: `/api/stats` never asks for them. A group whose last row goes
    // is deleted. The backfill sums the rows stored so far.
    r#"
    CREATE TABLE usage_days (
        day        INTEGER NOT NULL,
        model      TEXT NOT NULL,
        cwd        TEXT,
        machine    TEXT,
        cost_sum   REAL NOT NULL DEFAULT 0,
        cost_error REAL NOT NULL DEFAULT 0,
        priced     INTEGER NOT NULL DEFAULT 0,
        unpriced   INTEGER NOT NULL DEFAULT 0,
        tokens     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX usage_days_key ON usage_days(day, model, cwd, machine);
    INSERT INTO usage_days (day, model, cwd, machine, cost_sum, priced, unpriced, tokens)
        SELECT (ts / 86400000) * 86400000, model, cwd, machine, COALESCE(SUM(cost_usd), 0.0),
               COUNT(cost_usd), SUM(cost_usd IS NULL),
               SUM(input_tokens + output_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens)
        FROM usage WHERE ts >= 0 GROUP BY 1, 2, 3, 4;
    CREATE TRIGGER usage_days_insert AFTER INSERT ON usage WHEN new.ts >= 0 BEGIN
        INSERT INTO usage_days (day, model, cwd, machine)
            SELECT (new.ts / 86400000) * 86400000, new.model, new.cwd, new.machine
            WHERE NOT EXISTS (SELECT 1 FROM usage_days WHERE day = (new.ts / 86400000) * 86400000
                AND model = new.model AND cwd IS new.cwd AND machine IS new.machine);
        UPDATE usage_days SET
            cost_error = CASE WHEN new.cost_usd IS NULL THEN cost_error
                WHEN abs(cost_sum) > abs(new.cost_usd) THEN cost_error + ((cost_sum - (cost_sum + new.cost_usd)) + new.cost_usd)
                ELSE cost_error + ((new.cost_usd - (cost_sum + new.cost_usd)) + cost_sum) END,
            cost_sum = CASE WHEN new.cost_usd IS NULL THEN cost_sum ELSE cost_sum + new.cost_usd END,
            priced = priced + (new.cost_usd IS NOT NULL),
            unpriced = unpriced + (new.cost_usd IS NULL),
            tokens = tokens + new.input_tokens + new.output_tokens + new.cache_write_5m_tokens
                + new.cache_write_1h_tokens + new.cache_read_tokens
        WHERE day = (new.ts / 86400000) * 86400000 AND model = new.model AND cwd IS new.cwd AND machine IS new.machine;
    END;
    CREATE TRIGGER usage_days_delete AFTER DELETE ON usage WHEN old.ts >= 0 BEGIN
        UPDATE usage_days SET
            cost_error = CASE WHEN old.cost_usd IS NULL THEN cost_error WHEN priced = 1 THEN 0.0
                WHEN abs(cost_sum) > abs(old.cost_usd) THEN cost_error + ((cost_sum - (cost_sum - old.cost_usd)) - old.cost_usd)
                ELSE cost_error + ((-old.cost_usd - (cost_sum - old.cost_usd)) + cost_sum) END,
            cost_sum = CASE WHEN old.cost_usd IS NULL THEN cost_sum WHEN priced = 1 THEN 0.0 ELSE cost_sum - old.cost_usd END,
            priced = priced - (old.cost_usd IS NOT NULL),
            unpriced = unpriced - (old.cost_usd IS NULL),
            tokens = tokens - (old.input_tokens + old.output_tokens + old.cache_write_5m_tokens
                + old.cache_write_1h_tokens + old.cache_read_tokens)
        WHERE day = (old.ts / 86400000) * 86400000 AND model = old.model AND cwd IS old.cwd AND machine IS old.machine;
        DELETE FROM usage_days
        WHERE day = (old.ts / 86400000) * 86400000 AND model = old.model AND cwd IS old.cwd AND machine IS old.machine
            AND priced = 0 AND unpriced = 0;
    END;
    CREATE TRIGGER usage_days_update AFTER UPDATE OF ts, model, cwd, machine, cost_usd, input_tokens,
        output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens ON usage BEGIN
        UPDATE usage_days SET
            cost_error = CASE WHEN old.cost_usd IS NULL THEN cost_error WHEN priced = 1 THEN 0.0
                WHEN abs(cost_sum) > abs(old.cost_usd) THEN cost_error + ((cost_sum - (cost_sum - old.cost_usd)) - old.cost_usd)
                ELSE cost_error + ((-old.cost_usd - (cost_sum - old.cost_usd)) + cost_sum) END,
            cost_sum = CASE WHEN old.cost_usd IS NULL THEN cost_sum WHEN priced = 1 THEN 0.0 ELSE cost_sum - old.cost_usd END,
            priced = priced - (old.cost_usd IS NOT NULL),
            unpriced = unpriced - (old.cost_usd IS NULL),
            tokens = tokens - (old.input_tokens + old.output_tokens + old.cache_write_5m_tokens
                + old.cache_write_1h_tokens + old.cache_read_tokens)
        WHERE old.ts >= 0 AND day = (old.ts / 86400000) * 86400000 AND model = old.model
            AND cwd IS old.cwd AND machine IS old.machine;
        DELETE FROM usage_days
        WHERE old.ts >= 0 AND day = (old.ts / 86400000) * 86400000 AND model = old.model
            AND cwd IS old.cwd AND machine IS old.machine AND priced = 0 AND unpriced = 0;
        INSERT INTO usage_days (day, model, cwd, machine)
            SELECT (new.ts / 86400000) * 86400000, new.model, new.cwd, new.machine
            WHERE new.ts >= 0 AND NOT EXISTS (SELECT 1 FROM usage_days WHERE day = (new.ts / 86400000) * 86400000
                AND model = new.model AND cwd IS new.cwd AND machine IS new.machine);
        UPDATE usage_days SET
            cost_error = CASE WHEN new.cost_usd IS NULL THEN cost_error
                WHEN abs(cost_sum) > abs(new.cost_usd) THEN cost_error + ((cost_sum - (cost_sum + new.cost_usd)) + new.cost_usd)
                ELSE cost_error + ((new.cost_usd - (cost_sum + new.cost_usd)) + cost_sum) END,
            cost_sum = CASE WHEN new.cost_usd IS NULL THEN cost_sum ELSE cost_sum + new.cost_usd END,
            priced = priced + (new.cost_usd IS NOT NULL),
            unpriced = unpriced + (new.cost_usd IS NULL),
            tokens = tokens + new.input_tokens + new.output_tokens + new.cache_write_5m_tokens
                + new.cache_write_1h_tokens + new.cache_read_tokens
        WHERE new.ts >= 0 AND day = (new.ts / 86400000) * 86400000 AND model = new.model
            AND cwd IS new.cwd AND machine IS new.machine;
    END;
    "#,
    // 15: migration 12's `usage_otel_retired`, asked first. It ran its three
    // statements (an update with two subqueries, then a delete) for every
    // usage row with a request id, though they change something only when
    // an OTel row waits for that request, which is rare: a response's OTel
    // record usually arrives after its hook row. That was about a third of
    // every usage insert (104k to 66k instructions a row, measured with
    // callgrind on real usage rows; issue 21). The `WHEN` now asks the
    // `usage_request` index first; what the trigger does is unchanged.
    r#"
    DROP TRIGGER IF EXISTS usage_otel_retired;
    CREATE TRIGGER usage_otel_retired AFTER INSERT ON usage
    WHEN new.origin != 'otel' AND new.request_id IS NOT NULL AND EXISTS (
            SELECT 1 FROM usage AS retired
             WHERE retired.request_id = new.request_id AND retired.origin = 'otel') BEGIN
        UPDATE usage SET otel_cost_usd = (
                SELECT retired.otel_cost_usd FROM usage AS retired
                 WHERE retired.request_id = new.request_id AND retired.origin = 'otel' LIMIT 1)
         WHERE key = new.key AND otel_cost_usd IS NULL;
        DELETE FROM usage WHERE request_id = new.request_id AND origin = 'otel';
    END;
    "#,
    // 16: `usage_session` dropped. It is a prefix of `usage_session_totals`
    // (migration 5), which answers every lookup by session as well, so it
    // only cost each usage insert one more b-tree to write (66k to 61k
    // instructions a row, callgrind on real usage rows; issue 21). The
    // queries that named it (`INDEXED BY`) name `usage_session_totals`.
    r#"
    DROP INDEX IF EXISTS usage_session;
    "#,
    // 17: tokens by kind, cost and unpriced responses per model, kept by
    // triggers on `usage` in the writer's transaction (as migration 14
    // keeps `usage_days`), so `/metrics` reads one row per model instead of
    // grouping every usage row (issue 21). `cost_sum` and `cost_error` are
    // SQLite's own Kahan-Babuska-Neumaier sum: `cost_sum + cost_error` is
    // what SUM(cost_usd) over the model's rows gives; with `priced` 0 the
    // cost is NULL, as SUM's. A model whose last row goes is deleted. An
    // update changes the row only when a column it counts changed (an
    // upsert often writes the same values again). The backfill sums the
    // rows stored so far.
    concat!(
        r#"
    CREATE TABLE usage_models (
        model                 TEXT PRIMARY KEY NOT NULL,
        input_tokens          INTEGER NOT NULL DEFAULT 0,
        output_tokens         INTEGER NOT NULL DEFAULT 0,
        cache_write_5m_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens     INTEGER NOT NULL DEFAULT 0,
        cost_sum              REAL NOT NULL DEFAULT 0,
        cost_error            REAL NOT NULL DEFAULT 0,
        priced                INTEGER NOT NULL DEFAULT 0,
        unpriced              INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    INSERT INTO usage_models (model, input_tokens, output_tokens, cache_write_5m_tokens,
            cache_write_1h_tokens, cache_read_tokens, cost_sum, priced, unpriced)
        SELECT model, CAST(TOTAL(input_tokens) AS INTEGER), CAST(TOTAL(output_tokens) AS INTEGER),
               CAST(TOTAL(cache_write_5m_tokens) AS INTEGER), CAST(TOTAL(cache_write_1h_tokens) AS INTEGER),
               CAST(TOTAL(cache_read_tokens) AS INTEGER), COALESCE(SUM(cost_usd), 0.0),
               COUNT(cost_usd), SUM(cost_usd IS NULL)
        FROM usage GROUP BY model;
    CREATE TRIGGER usage_models_insert AFTER INSERT ON usage BEGIN
        INSERT INTO usage_models (model) VALUES (new.model) ON CONFLICT (model) DO NOTHING;
        UPDATE usage_models SET"#,
        usage_models_add!(),
        r#"
    END;
    CREATE TRIGGER usage_models_delete AFTER DELETE ON usage BEGIN
        UPDATE usage_models SET"#,
        usage_models_remove!(),
        r#"
    END;
    CREATE TRIGGER usage_models_update AFTER UPDATE OF model, cost_usd, input_tokens, output_tokens,
        cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens ON usage
    WHEN old.model IS NOT new.model OR old.cost_usd IS NOT new.cost_usd
        OR old.input_tokens IS NOT new.input_tokens OR old.output_tokens IS NOT new.output_tokens
        OR old.cache_write_5m_tokens IS NOT new.cache_write_5m_tokens
        OR old.cache_write_1h_tokens IS NOT new.cache_write_1h_tokens
        OR old.cache_read_tokens IS NOT new.cache_read_tokens BEGIN
        UPDATE usage_models SET"#,
        usage_models_remove!(),
        r#"
        INSERT INTO usage_models (model) VALUES (new.model) ON CONFLICT (model) DO NOTHING;
        UPDATE usage_models SET"#,
        usage_models_add!(),
        r#"
    END;
    "#
    ),
];

/// Work a migration needs beyond its SQL, run in the same transaction right
/// after it: (the migration's number, the step).
const BACKFILLS: &[(usize, Backfill)] = &[(5, backfill_search), (13, otel_if_missing)];

/// The OTel migration (12) for a database that went without it: for a
/// while main's build numbered the search mark 12 (it landed before OTel,
/// which had 12 reserved), so a database it created has `user_version` 12
/// without the OTel tables. Migration 13 gives them to it; migration 13's
/// own SQL is idempotent for the same reason (that database has its table).
fn otel_if_missing(connection: &Connection) -> rusqlite::Result<()> {
    let present: i64 = connection.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'otel_events'",
        [],
        |row| row.get(0),
    )?;
    if present == 0 {
        connection.execute_batch(MIGRATIONS[11])?;
    }
    Ok(())
}

/// A step of a migration written in Rust (see [`BACKFILLS`]).
type Backfill = fn(&Connection) -> rusqlite::Result<()>;

/// Fills `events_fts` from the events already stored, with the same text
/// extraction the source threads use for new events.
pub(crate) fn backfill_search(connection: &Connection) -> rusqlite::Result<()> {
    let mut select = connection.prepare("SELECT seq, hook, payload FROM events")?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let hook = row.get_ref(1)?.as_str()?;
        let payload = row.get_ref(2)?.as_str()?;
        insert_search_text(connection, row.get(0)?, hook, payload)?;
    }
    Ok(())
}

/// Adds one stored event's searchable text to `events_fts`, for tools and
/// tests that insert rows without the writer. Rows must be inserted and
/// indexed in `seq` order: the search index's mark moves up to `seq`, so
/// the collector's indexer does not add them again.
pub fn index_event_text(
    connection: &Connection,
    seq: i64,
    hook: &str,
    payload: &str,
) -> rusqlite::Result<()> {
    insert_search_text(connection, seq, hook, payload)?;
    crate::store::indexer::raise_mark(connection, seq)
}

fn insert_search_text(
    connection: &Connection,
    seq: i64,
    hook: &str,
    payload: &str,
) -> rusqlite::Result<()> {
    if let Some(text) = crate::search::searchable_text(hook, payload) {
        connection
            .prepare_cached("INSERT INTO events_fts (rowid, text) VALUES (?1, ?2)")?
            .execute(rusqlite::params![seq, text])?;
    }
    Ok(())
}

/// Rebuilds the search index from `events`, for tools and benchmarks that
/// insert rows without the writer, and moves its mark to the newest event.
pub fn rebuild_search_index(connection: &Connection) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO events_fts (events_fts) VALUES ('delete-all')",
        [],
    )?;
    backfill_search(connection)?;
    connection.execute(
        "UPDATE search_index_mark SET indexed_seq = (SELECT COALESCE(MAX(seq), 0) FROM events)",
        [],
    )?;
    Ok(())
}

/// Recomputes `event_counts` from `events`, for tools and tests that insert
/// rows without the writer.
pub const REBUILD_EVENT_COUNTS: &str = "DELETE FROM event_counts;
    INSERT INTO event_counts (minute, hook, machine, count)
        SELECT (ts / 60000) * 60000, hook, machine, count(*) FROM events GROUP BY 1, 2, 3;";

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long opening a database waits for another process (a collector and
/// an import starting together, two imports) that holds the lock while it
/// migrates or switches the file to WAL, before giving up with the error.
pub(crate) const LOCK_PATIENCE: Duration = Duration::from_secs(30);

/// Whether an error is another connection holding a lock: worth retrying.
pub(crate) fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Runs `step` until it succeeds, fails with something other than a busy
/// database, or [`LOCK_PATIENCE`] has passed. SQLite's busy timeout does not
/// cover every lock (a journal-mode switch, a read upgraded to a write
/// fail at once), so the caller's step is retried here with a backoff.
pub(crate) fn retry_while_busy<T>(
    mut step: impl FnMut() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let deadline = Instant::now() + LOCK_PATIENCE;
    let mut pause = Duration::from_millis(5);
    loop {
        match step() {
            Err(error) if is_busy(&error) && Instant::now() < deadline => {
                // Backoff while another process holds the lock.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            result => return result,
        }
    }
}

/// What one migration step found.
enum MigrationStep {
    /// One more migration was applied and committed.
    Applied,
    /// The database is at this build's version.
    UpToDate,
}

/// Applies the migrations this database has not had yet. Safe against
/// another process migrating the same file at the same time: each step
/// takes an exclusive transaction and reads `user_version` inside it, so a
/// migration another process already applied is never applied twice, and a
/// lock held by that process is waited for (see [`retry_while_busy`]).
pub fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    while let MigrationStep::Applied = retry_while_busy(|| migrate_one(connection))? {}
    Ok(())
}

/// Applies the next migration, if any, in one exclusive transaction.
fn migrate_one(connection: &mut Connection) -> rusqlite::Result<MigrationStep> {
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
    let current: i64 = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "the database has schema version {current}, newer than this collector's {SCHEMA_VERSION}; upgrade hooktrail"
            )),
        ));
    }
    let Some(sql) = MIGRATIONS.get(current as usize) else {
        transaction.commit()?;
        return Ok(MigrationStep::UpToDate);
    };
    let number = current as usize + 1;
    transaction.execute_batch(sql)?;
    for (_, backfill) in BACKFILLS.iter().filter(|(with, _)| *with == number) {
        backfill(&transaction)?;
    }
    transaction.pragma_update(None, "user_version", number as i64)?;
    transaction.commit()?;
    Ok(MigrationStep::Applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory database with the first `version` migrations.
    fn migrated_to(version: usize) -> Connection {
        let connection = Connection::open_in_memory().unwrap();
        for (index, sql) in MIGRATIONS.iter().take(version).enumerate() {
            connection.execute_batch(sql).unwrap();
            connection
                .pragma_update(None, "user_version", index as i64 + 1)
                .unwrap();
        }
        connection
    }

    fn totals(connection: &Connection, session: &str) -> (f64, i64, i64, i64, i64) {
        connection
            .query_row(
                "SELECT total_cost_usd, total_tokens, usage_responses, unpriced_responses, agent_count \
                 FROM sessions WHERE session_id = ?1",
                [session],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
            )
            .unwrap()
    }

    fn add_usage(connection: &Connection, key: &str, session: &str, cost: Option<f64>) {
        connection
            .execute(
                "INSERT INTO usage (key, message_id, session_id, model, input_tokens, output_tokens, cost_usd, origin) \
                 VALUES (?1, ?1, ?2, 'm', 10, 5, ?3, 'hook')",
                rusqlite::params![key, session, cost],
            )
            .unwrap();
    }

    /// One usage row of `origin` for `request`, with OTel's cost when given.
    fn add_request_usage(connection: &Connection, key: &str, origin: &str, otel_cost: Option<f64>) {
        connection
            .execute(
                "INSERT INTO usage (key, message_id, request_id, session_id, model, origin, otel_cost_usd) \
                 VALUES (:key, :key, 'req-1', 's', 'm', :origin, :otel_cost)",
                rusqlite::named_params! {":key": key, ":origin": origin, ":otel_cost": otel_cost},
            )
            .unwrap();
    }

    fn usage_rows(connection: &Connection) -> Vec<(String, String, Option<f64>)> {
        let mut select = connection
            .prepare("SELECT key, origin, otel_cost_usd FROM usage ORDER BY key")
            .unwrap();
        let rows = select.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)));
        rows.unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn migration_15_retires_a_waiting_otel_row_as_before_and_leaves_others_alone() {
        for version in [12, MIGRATIONS.len()] {
            // A hook row with no OTel row waiting: nothing happens.
            let connection = migrated_to(version);
            add_request_usage(&connection, "hook-a", "hook", None);
            let alone = vec![("hook-a".to_string(), "hook".to_string(), None)];
            assert_eq!(usage_rows(&connection), alone, "version {version}");
            // OTel first, then the hook's row: OTel's cost moves, its row goes.
            let connection = migrated_to(version);
            add_request_usage(&connection, "otel-b", "otel", Some(0.25));
            add_request_usage(&connection, "hook-b", "transcript", None);
            let joined = vec![("hook-b".to_string(), "transcript".to_string(), Some(0.25))];
            assert_eq!(usage_rows(&connection), joined, "version {version}");
        }
    }

    /// The plan's detail lines of `sql` (`EXPLAIN QUERY PLAN`).
    fn plan(connection: &Connection, sql: &str) -> Vec<String> {
        let mut explain = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let rows = explain.query_map([], |row| row.get::<_, String>(3));
        rows.unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn migration_16_drops_usage_session_and_lookups_by_session_still_use_an_index() {
        let mut connection = migrated_to(15);
        connection
            .execute_batch("INSERT INTO sessions (session_id, machine, first_ts, last_ts) VALUES ('s', 'm', 1, 2)")
            .unwrap();
        add_usage(&connection, "u1", "s", Some(1.5));
        add_usage(&connection, "u2", "other", None);
        migrate(&mut connection).unwrap();
        let named = "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'usage'";
        let indexes: Vec<String> = connection
            .prepare(named)
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            !indexes.iter().any(|name| name == "usage_session"),
            "{indexes:?}"
        );
        assert!(
            indexes.iter().any(|name| name == "usage_session_totals"),
            "{indexes:?}"
        );
        let by_session = "SELECT COALESCE(SUM(u.origin = 'otel'), 0) FROM usage AS u \
                          INDEXED BY usage_session_totals WHERE u.session_id = 's'";
        let steps = plan(&connection, by_session);
        assert!(
            steps
                .iter()
                .any(|step| step.contains("USING INDEX usage_session_totals (session_id=?)")),
            "{steps:?}"
        );
        let rows: i64 = connection
            .query_row(by_session, [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 0, "the hook row of 's' is read through the index");
        add_usage(&connection, "u3", "s", Some(0.5));
        assert_eq!(
            totals(&connection, "s").0,
            2.0,
            "the totals triggers run after the drop"
        );
        let steps = plan(
            &connection,
            "SELECT SUM(cost_usd) FROM usage WHERE session_id = 's'",
        );
        assert!(
            steps.iter().all(|step| !step.starts_with("SCAN usage")),
            "{steps:?}"
        );
    }

    #[test]
    fn migration_6_sums_existing_sessions_and_triggers_keep_the_totals_in_step() {
        let mut connection = migrated_to(5);
        connection
            .execute_batch(
                "INSERT INTO sessions (session_id, machine, first_ts, last_ts) VALUES ('s', 'm', 1, 2);
                 INSERT INTO agents (agent_id, session_id) VALUES ('a1', 's');",
            )
            .unwrap();
        add_usage(&connection, "u1", "s", Some(0.5));
        add_usage(&connection, "u2", "s", None);
        migrate(&mut connection).unwrap();
        assert_eq!(totals(&connection, "s"), (0.5, 30, 2, 1, 1));

        // New rows add, a repricing update moves the cost, a delete subtracts.
        add_usage(&connection, "u3", "s", Some(0.25));
        connection
            .execute("UPDATE usage SET cost_usd = 1.0 WHERE key = 'u2'", [])
            .unwrap();
        assert_eq!(totals(&connection, "s"), (1.75, 45, 3, 0, 1));
        connection
            .execute("DELETE FROM usage WHERE key = 'u1'", [])
            .unwrap();
        assert_eq!(totals(&connection, "s"), (1.25, 30, 2, 0, 1));
        connection
            .execute(
                "INSERT INTO agents (agent_id, session_id) VALUES ('a2', 's')",
                [],
            )
            .unwrap();
        assert_eq!(totals(&connection, "s").4, 2);

        // Usage and agents stored before their session row are summed when
        // the row is created.
        add_usage(&connection, "v1", "late", Some(2.0));
        connection
            .execute(
                "INSERT INTO agents (agent_id, session_id) VALUES ('b1', 'late')",
                [],
            )
            .unwrap();
        connection
            .execute(
                "INSERT INTO sessions (session_id, machine, first_ts, last_ts) VALUES ('late', 'm', 1, 2)",
                [],
            )
            .unwrap();
        assert_eq!(totals(&connection, "late"), (2.0, 15, 1, 0, 1));
    }

    /// The rollup's rows and the usage rows grouped as `/api/stats` grouped
    /// them before schema 14, since day 0.
    fn days_both_ways(connection: &Connection) -> (Vec<String>, Vec<String>) {
        let read = |sql: &str| -> Vec<String> {
            let mut statement = connection.prepare(sql).unwrap();
            let rows = statement
                .query_map([0], |row| {
                    let cost: Option<f64> = row.get(4)?;
                    Ok(format!(
                        "{}|{}|{:?}|{:?}|{:?}|{}|{}",
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, Option<String>>(2)?,
                        row.get::<_, Option<String>>(3)?,
                        cost.map(|cost| (cost * 1e9).round() / 1e9),
                        row.get::<_, i64>(5)?,
                        row.get::<_, i64>(6)?
                    ))
                })
                .unwrap();
            rows.map(Result::unwrap).collect()
        };
        let direct = read(
            &crate::store::read::stats::COST_PER_DAY_FROM_USAGE
                .replace("ORDER BY day", "ORDER BY day, model, cwd, machine"),
        );
        let rollup = crate::store::read::stats::cost_per_day(connection, 0)
            .unwrap()
            .into_iter()
            .map(|row| {
                format!(
                    "{}|{}|{:?}|{:?}|{:?}|{}|{}",
                    row.day,
                    row.model,
                    row.project,
                    row.machine,
                    row.cost_usd.map(|cost| (cost * 1e9).round() / 1e9),
                    row.unpriced_responses,
                    row.tokens
                )
            })
            .collect();
        (rollup, direct)
    }

    fn add_day_usage(
        connection: &Connection,
        key: &str,
        ts: Option<i64>,
        cwd: Option<&str>,
        cost: Option<f64>,
    ) {
        connection
            .execute(
                "INSERT INTO usage (key, message_id, session_id, model, cwd, machine, ts, input_tokens, output_tokens, cost_usd, origin) \
                 VALUES (?1, ?1, 's', 'm', ?2, 'box', ?3, 10, 5, ?4, 'hook')",
                rusqlite::params![key, cwd, ts, cost],
            )
            .unwrap();
    }

    #[test]
    fn migration_14_backfills_cost_per_day_and_triggers_keep_it_equal_to_the_usage_rows() {
        let mut connection = migrated_to(13);
        let day = 86_400_000;
        add_day_usage(&connection, "u1", Some(day - 1), Some("/p"), Some(0.1));
        add_day_usage(&connection, "u2", Some(day + 1), Some("/p"), Some(0.2));
        add_day_usage(&connection, "u3", Some(day + 2), None, None);
        add_day_usage(&connection, "u4", None, Some("/p"), Some(5.0));
        add_day_usage(&connection, "u5", Some(-5), Some("/p"), Some(7.0));
        migrate(&mut connection).unwrap();
        let (rollup, direct) = days_both_ways(&connection);
        assert_eq!(rollup, direct);
        assert_eq!(rollup.len(), 3, "{rollup:?}");

        // New rows, one in the NULL project's group; a repricing; a row
        // that moves day; the last row of a group deleted.
        add_day_usage(&connection, "u6", Some(day + 3), None, Some(0.3));
        add_day_usage(&connection, "u7", Some(2 * day), Some("/q"), Some(0.7));
        connection
            .execute("UPDATE usage SET cost_usd = 1.5 WHERE key = 'u2'", [])
            .unwrap();
        connection
            .execute("UPDATE usage SET cost_usd = NULL WHERE key = 'u6'", [])
            .unwrap();
        connection
            .execute(
                "UPDATE usage SET ts = 3 * 86400000, input_tokens = 99 WHERE key = 'u1'",
                [],
            )
            .unwrap();
        connection
            .execute("UPDATE usage SET ts = 5 WHERE key = 'u4'", [])
            .unwrap();
        assert_eq!(days_both_ways(&connection).0, days_both_ways(&connection).1);
        connection
            .execute("DELETE FROM usage WHERE key IN ('u7', 'u3')", [])
            .unwrap();
        let (rollup, direct) = days_both_ways(&connection);
        assert_eq!(rollup, direct);
        let groups: i64 = connection
            .query_row("SELECT COUNT(*) FROM usage_days", [], |row| row.get(0))
            .unwrap();
        assert_eq!(groups as usize, rollup.len(), "no empty group is kept");
    }

    /// One usage row of `model` with `tokens` of each kind and `cost`.
    fn add_model_usage(
        connection: &Connection,
        key: &str,
        model: &str,
        tokens: i64,
        cost: Option<f64>,
    ) {
        connection
            .execute(
                "INSERT INTO usage (key, message_id, session_id, model, input_tokens, output_tokens, \
                 cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, cost_usd, origin) \
                 VALUES (:key, :key, 's', :model, :tokens, 2 * :tokens, 3 * :tokens, 4 * :tokens, \
                 5 * :tokens, :cost, 'hook')",
                rusqlite::named_params! {":key": key, ":model": model, ":tokens": tokens, ":cost": cost},
            )
            .unwrap();
    }

    /// `/metrics`'s usage sums from the rollup and grouped from the rows
    /// (costs compared bit for bit: the page prints them in full).
    fn assert_model_sums_equal(connection: &Connection) {
        use crate::store::read::stats::{read_usage_sums, usage_sums, USAGE_SUMS_FROM_USAGE};
        let rollup = usage_sums(connection).unwrap();
        let direct = read_usage_sums(connection, USAGE_SUMS_FROM_USAGE).unwrap();
        assert_eq!(rollup, direct);
        let bits = |rows: &[(String, crate::store::read::stats::UsageSums)]| -> Vec<Option<u64>> {
            rows.iter()
                .map(|(_, sums)| sums.cost_usd.map(f64::to_bits))
                .collect()
        };
        assert_eq!(bits(&rollup), bits(&direct));
    }

    #[test]
    fn migration_17_backfills_usage_per_model_and_triggers_keep_it_equal_to_the_usage_rows() {
        let mut connection = migrated_to(16);
        add_model_usage(&connection, "u1", "opus", 10, Some(0.1));
        add_model_usage(&connection, "u2", "opus", 20, None);
        add_model_usage(&connection, "u3", "haiku", 5, Some(0.2));
        migrate(&mut connection).unwrap();
        assert_model_sums_equal(&connection);

        // Many rows of irregular costs over four models, some unpriced.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for index in 0..3_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let model = ["opus", "sonnet", "haiku", "fable"][(state >> 60) as usize % 4];
            let cost = (state >> 33) as f64 / 7e9;
            let cost = (index % 17 != 0).then_some(cost);
            add_model_usage(&connection, &format!("r{index}"), model, index, cost);
        }
        assert_model_sums_equal(&connection);

        // A repricing, a row that moves model, an unpriced row priced, the
        // same values written again, and the last rows of a model deleted.
        for sql in [
            "UPDATE usage SET cost_usd = cost_usd * 1.1 WHERE key LIKE 'r1%'",
            "UPDATE usage SET model = 'haiku', input_tokens = 7 WHERE key = 'u1'",
            "UPDATE usage SET cost_usd = 0.3 WHERE key = 'u2'",
            "UPDATE usage SET cost_usd = cost_usd, model = model WHERE key LIKE 'r2%'",
            "DELETE FROM usage WHERE model = 'fable'",
            "DELETE FROM usage WHERE key LIKE 'r5%'",
        ] {
            connection.execute(sql, []).unwrap();
            assert_model_sums_equal(&connection);
        }
        let models: i64 = connection
            .query_row("SELECT COUNT(*) FROM usage_models", [], |row| row.get(0))
            .unwrap();
        assert_eq!(models, 3, "no empty model is kept");
    }

    #[test]
    fn migration_5_backfills_the_search_index_of_a_version_4_database_in_place() {
        let mut connection = migrated_to(4);
        connection
            .execute(
                "INSERT INTO events (id, ts, received_at, machine, session_id, hook, tool, source, payload) \
                 VALUES ('e1', 1, 1, 'm', 's', 'PreToolUse', 'Bash', 'socket', ?1)",
                [r#"{"tool_input":{"command":"cargo build --Release"}}"#],
            )
            .unwrap();
        migrate(&mut connection).unwrap();
        let found: i64 = connection
            .query_row(
                "SELECT rowid FROM events_fts WHERE events_fts MATCH '\"build --rel\"'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(found, 1);
        connection.execute("DELETE FROM events", []).unwrap();
        let left: i64 = connection
            .query_row(
                "SELECT COUNT(*) FROM events_fts WHERE events_fts MATCH 'cargo'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(left, 0, "deleting an event removes its text");
    }

    #[test]
    fn migrations_apply_once_and_are_idempotent() {
        let mut connection = Connection::open_in_memory().unwrap();
        migrate(&mut connection).unwrap();
        migrate(&mut connection).unwrap();
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        connection
            .execute_batch("SELECT * FROM tool_calls; SELECT * FROM prompts; SELECT * FROM usage; SELECT rowid FROM events_fts")
            .unwrap();
    }

    #[test]
    fn a_database_numbered_by_the_search_mark_first_gets_the_otel_tables() {
        let mut connection = Connection::open_in_memory().unwrap();
        // As main's build left it: migrations 1 to 11, then the search mark
        // as number 12.
        for sql in MIGRATIONS.iter().take(11) {
            connection.execute_batch(sql).unwrap();
        }
        connection.execute_batch(MIGRATIONS[12]).unwrap();
        connection.pragma_update(None, "user_version", 12).unwrap();
        migrate(&mut connection).unwrap();
        connection
            .execute_batch("SELECT key, otel_cost_usd FROM usage; SELECT * FROM otel_events; SELECT * FROM search_index_mark")
            .unwrap();
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }
}
