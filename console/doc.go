// Package console is dagflow's web console: an http.Handler that shows the
// runs of an Engine and, when allowed, retries or cancels them.
//
// # What it shows
//
// The run list shows every run, newest first, with its state, id, start,
// duration, progress and error (which names the failed step; a long error
// is cut to its first line), filtered by state, by a part of the id or by
// parent run, a page at a time (Engine.List's cursors). A child run says
// whose child it is.
//
// A run's page shows the workflow as a graph, each step coloured by its
// state, edges from dependsOn, laid out by Graphviz's dot (go-graphviz, in
// WebAssembly: no cgo, no executable) and drawn as SVG by the server; a
// timeline of every attempt of every step, compensations too, with the
// critical path marked; and each step's attempts with their errors, HTTP
// status codes, durations and log lines, its result, and its input (the
// run's context and its dependencies' results). Large values are cut, with
// a link to the whole value as JSON; long errors are folded to their first
// line and cut, with a link to the whole text. While the run is not final
// the page follows it: it listens to server-sent events and redraws what
// changed, and says what the run waits for when its steps do not tell
// (Status.WaitingFor: a handler no engine registered, say).
//
// Each kind of step is drawn as what it is. A map step is one stacked node
// with its items' counts, linked to its own page, which lists its items a
// page at a time, filtered by state, each with its value, attempts and
// their log lines, result, error and child run. A workflow step links to
// its child run, whose page draws the child's graph and links back to its
// parent; a run's page lists its child runs. A sleep says until when it
// waits, a wait for an event which event and key, both in the waiting
// state.
//
// The schedules page lists the engine's schedules with their next and
// latest ticks, and the retention in force for runs and events.
//
// Every page is rendered by the server with html/template and works without
// JavaScript; the embedded script only adds live updates, selecting a step
// from the graph or the timeline, and tooltips. All assets are embedded;
// a page loads nothing from elsewhere.
//
// # Mounting
//
// Mount the handler under any prefix:
//
//	http.Handle("/flows/", console.Handler(eng, console.WithActions(true), console.WithToken(token)))
//
// Links are relative, and the console finds its paths below the prefix
// from the ServeMux pattern that matched; http.StripPrefix works too. Below
// the prefix:
//
//	GET  ./                                       the run list; ?state=failed&q=order&parent=ID&limit=50&after=CURSOR
//	GET  ./runs.json                              the same, as dagflow.RunList JSON
//	GET  ./schedules                              the schedules, with the retention
//	GET  ./schedules.json                         []dagflow.ScheduleInfo JSON
//	GET  ./runs/{id}                              a run's page
//	GET  ./runs/{id}/status                       dagflow.Status JSON
//	GET  ./runs/{id}/attempts                     []dagflow.Attempt JSON (with logs)
//	GET  ./runs/{id}/events                       text/event-stream: "status" events, then "end"
//	GET  ./runs/{id}/error                        the run's whole error, as text
//	GET  ./runs/{id}/steps/{step}                 a step's page: a map step's items; ?state=failed&from=50&limit=50
//	GET  ./runs/{id}/steps/{step}/result          the step's result, as the step returned it
//	GET  ./runs/{id}/steps/{step}/input           the step's input, as the HTTP job protocol sends it
//	GET  ./runs/{id}/steps/{step}/error           the step's whole error, as text
//	GET  ./runs/{id}/steps/{step}/items           []dagflow.Item JSON of a map step
//	GET  ./runs/{id}/steps/{step}/items/{n}/value an item (also .../result; .../error as text)
//	POST ./runs/{id}/retry                        Engine.Retry, then back to the run's page
//	POST ./runs/{id}/cancel                       Engine.Cancel, then back to the run's page
//	POST ./runs/{id}/steps/{step}/rerun           Engine.Rerun ("retry from this step"), then back
//	GET  ./static/{file}                          CSS, JavaScript, icon
//
// Ids are path-escaped segments. An unknown run or address is a 404 page;
// a wrong method, 405.
//
// # Security
//
// The console shows what the store holds: results, contexts, log lines,
// errors. It has no login of its own: mount it behind the application's
// authentication, or on an address only operators reach. Step URLs are
// shown without passwords and query values; webhook URLs as the engine
// redacts them.
//
// It is read-only unless WithActions(true), which turns on retrying a run,
// cancelling it, and running one step again with every step downstream of
// it ("rerun from this step", offered on an ended run for a step whose
// dependencies completed; a child run runs again with its parent, so its
// page offers neither retry nor rerun). Actions are POST only, and
// each is checked, in order: a browser's request must come from the
// console's own origin (Sec-Fetch-Site or Origin, by
// http.CrossOriginProtection); with WithToken, it must carry the token, in
// the form field "token" or the X-Dagflow-Token header (compared in
// constant time); and a form must carry the CSRF token of the browser's
// cookie (an HMAC of the cookie's random value under a key made when the
// handler is, so a form goes stale when the process restarts). A request
// with the right X-Dagflow-Token header needs no CSRF token: no other site
// can make a browser send that header. A client that sends Accept:
// application/json gets the run's new dagflow.Status instead of a redirect:
//
//	curl -X POST -H 'X-Dagflow-Token: …' -H 'Accept: application/json' http://host/flows/runs/order-1/retry
//
// Every reply forbids framing and carries a Content-Security-Policy that
// allows scripts, styles and connections to the console's own origin only.
// Every step id, result and log line is escaped by html/template.
package console
