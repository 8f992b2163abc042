//! The query-string property, shared by the `api_query` fuzz target and the
//! regression test that replays the fuzzer's saved inputs.

use hooktrail_collector::{
    parse_events_query, parse_sessions_query, parse_socket_query, parse_stats_query,
    CommittedEvent, EventFilter,
};
use rusqlite::Connection;

/// One candidate row: (session, agent, machine, hook, tool, payload).
type Row = (
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    String,
);

/// Parsing any text never panics; a parsed filter selects the same rows live
/// as in SQL.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_events_query(text);
    let _ = parse_sessions_query(text);
    let _ = parse_stats_query(text, 1_700_000_000_000);
    if let Ok(query) = parse_socket_query(text) {
        check_filter_agreement(&query.filter);
    }
    if let Ok(query) = parse_events_query(text) {
        check_filter_agreement(&query.filter);
    }
}

fn candidate_rows(filter: &EventFilter) -> Vec<Row> {
    let exact: Row = (
        filter.session.clone(),
        filter.agent.clone().filter(|agent| agent != "main"),
        filter.machine.clone().unwrap_or_else(|| "host".to_owned()),
        filter
            .hook
            .clone()
            .unwrap_or_else(|| "PreToolUse".to_owned()),
        filter.tool.clone(),
        format!(
            "{{\"x\":\"{}\"}}",
            filter
                .text
                .clone()
                .unwrap_or_default()
                .replace(['"', '\\'], "")
        ),
    );
    let other: Row = (
        Some("s-other".to_owned()),
        None,
        "other-host".to_owned(),
        "Stop".to_owned(),
        None,
        "{\"hook_event_name\":\"Stop\"}".to_owned(),
    );
    let mut upper = exact.clone();
    upper.5 = upper.5.to_uppercase();
    vec![exact, other, upper]
}

fn check_filter_agreement(filter: &EventFilter) {
    let connection = Connection::open_in_memory().expect("in-memory database");
    connection
        .execute_batch(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, session_id TEXT, agent_id TEXT, machine TEXT, hook TEXT, tool TEXT, payload TEXT)",
        )
        .expect("table");
    let rows = candidate_rows(filter);
    for row in &rows {
        connection
            .execute(
                "INSERT INTO events (session_id, agent_id, machine, hook, tool, payload) VALUES (?, ?, ?, ?, ?, ?)",
                rusqlite::params![row.0, row.1, row.2, row.3, row.4, row.5],
            )
            .expect("insert");
    }
    let (conditions, values) = filter.sql();
    let sql = format!("SELECT seq FROM events WHERE 1 = 1{conditions} ORDER BY seq");
    let mut statement = connection.prepare(&sql).expect("the filter's SQL prepares");
    let selected: Vec<i64> = statement
        .query_map(rusqlite::params_from_iter(values.iter()), |row| row.get(0))
        .expect("query")
        .map(|seq| seq.expect("seq"))
        .collect();
    for (index, row) in rows.iter().enumerate() {
        let live = filter.matches(&CommittedEvent {
            seq: index as i64 + 1,
            id: format!("e{index}"),
            ts: 0,
            received_at: 0,
            machine: row.2.clone(),
            session_id: row.0.clone(),
            agent_id: row.1.clone(),
            hook: row.3.clone(),
            tool: row.4.clone(),
            tool_use_id: None,
            cwd: None,
            source: "socket",
            payload: row.5.clone(),
            prompt_id: None,
            permission_mode: None,
            state: None,
            config_error: false,
        });
        let replayed = selected.contains(&(index as i64 + 1));
        assert_eq!(
            live, replayed,
            "live and SQL filters disagree on row {index} for {filter:?}"
        );
    }
}
