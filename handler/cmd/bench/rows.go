package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// row is one line of the table.
type row struct {
	figure, measured, floor, target, verdict string
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// latencyOf is the median latency of an operation over the sequences and the whole round trips that fit
// in it.
func latencyOf(seqs []sequence, op string, rtt time.Duration) (time.Duration, int) {
	var v []time.Duration
	for _, s := range seqs {
		v = append(v, s.m[op].latency)
	}
	lat := median(v)
	return lat, int(lat / rtt) // whole round trips that fit in the latency; the rest is work
}

// sequentialRow is a latency beside the floor's round trips in sequence.
func sequentialRow(figure string, seqs []sequence, op string, rtt time.Duration) row {
	lat, seqRT := latencyOf(seqs, op, rtt)
	fl := floors[op]
	r := row{
		figure:   figure,
		measured: fmt.Sprintf("%s (%d sequential)", ms(lat), seqRT),
		floor:    fmt.Sprintf("%s (%d sequential)", ms(time.Duration(fl.sequential)*rtt), fl.sequential),
		target:   "— (independent requests concurrent)",
		verdict:  "at floor",
	}
	if seqRT > fl.sequential {
		r.verdict = fmt.Sprintf("+%d sequential", seqRT-fl.sequential)
	}
	return r
}

// startupRow is the start-up figure that matters (issue 13): the first real call of a new process, a
// status at the added round-trip time. The process answered GET / before the call was sent, as the
// Functions host waits for it to.
func startupRow(seqs []sequence, rtt time.Duration) row {
	return sequentialRow(fmt.Sprintf("start-up: status as the first call of a new process, at %s RTT", ms(rtt)),
		seqs, opColdStatus, rtt)
}

// roundTripRows count the requests to Graph and Key Vault of each operation.
func roundTripRows(seqs []sequence) []row {
	var rows []row
	for _, op := range opOrder {
		rt := medianOf(seqs, op, func(m measure) int { return m.roundTrips })
		writes := medianOf(seqs, op, func(m measure) int { return m.writes })
		tokens := medianOf(seqs, op, func(m measure) int { return m.idTokens })
		ch := medianOf(seqs, op, func(m measure) int { return m.challenges })
		errs := medianOf(seqs, op, func(m measure) int { return m.errors })
		extra := []string{fmt.Sprintf("%d writes", writes)}
		if tokens > 0 {
			extra = append(extra, fmt.Sprintf("+%d MI tokens", tokens))
		}
		if ch > 0 {
			extra = append(extra, fmt.Sprintf("+%d challenge", ch))
		}
		if errs > 0 {
			extra = append(extra, fmt.Sprintf("%d error answers", errs))
		}
		r := row{
			figure:   "Graph and Key Vault round trips: " + op,
			measured: fmt.Sprintf("%d (%s)", rt, strings.Join(extra, ", ")),
			floor:    strconv.Itoa(floors[op].requests),
			target:   "—",
			verdict:  "—",
		}
		switch op {
		case opFresh:
			r.target = fmt.Sprintf("≤ %d, no retries", maxFreshRequests)
			r.verdict = verdict(rt <= maxFreshRequests && errs == 0)
		case opNothing, opStatus, opRotateKeep:
			r.target = fmt.Sprintf("≤ %d, no writes", maxQuietRequests)
			r.verdict = verdict(rt <= maxQuietRequests && writes == 0 && errs == 0)
		case opOverlap:
			r.target = fmt.Sprintf("≤ %d, no writes", maxSteadyRequests)
			r.verdict = verdict(rt <= maxSteadyRequests && writes == 0 && errs == 0)
		}
		rows = append(rows, r)
	}
	return rows
}

// signInRows count the requests to the token service of each operation: the sign-in tokens, and the
// metadata azidentity reads before a credential's first token request, which the sign-in adapter keeps
// for the process (so only the first check of a process may fetch it).
func signInRows(seqs []sequence) []row {
	var rows []row
	for _, op := range opOrder {
		fl := floors[op]
		tokens := medianOf(seqs, op, func(m measure) int { return m.signInTokens })
		oidc := medianOf(seqs, op, func(m measure) int { return m.openIDConfig })
		disc := medianOf(seqs, op, func(m measure) int { return m.instanceDiscovery })
		refused := medianOf(seqs, op, func(m measure) int { return m.signInRefused })
		other := medianOf(seqs, op, func(m measure) int { return m.loginOther })
		measured := fmt.Sprintf("%d tokens", tokens)
		if fl.firstCheck() {
			measured += fmt.Sprintf("; first check: +%d OpenID configuration, %d instance discovery", oidc, disc)
		} else {
			measured += fmt.Sprintf(", %d metadata", oidc+disc)
		}
		if refused > 0 {
			measured += fmt.Sprintf(", %d refused", refused)
		}
		if other > 0 {
			measured += fmt.Sprintf(", %d other requests", other)
		}
		r := row{
			figure:   "token service requests: " + op,
			measured: measured,
			floor:    fmt.Sprintf("%d tokens (%s)", fl.tokens, fl.tokensWhy),
			target:   "1 token per resource, no metadata",
			verdict:  verdict(tokens == fl.tokens && oidc <= fl.metadata && disc == 0 && refused == 0 && other == 0),
		}
		switch {
		case fl.firstCheck():
			r.floor += fmt.Sprintf(" + %d OpenID configuration", fl.metadata)
			r.target = "1 token per resource; metadata once per process"
		case op == opRotateRenew:
			r.target = "1 token per resource, +1 per acceptance attempt, no metadata"
		}
		rows = append(rows, r)
	}
	return rows
}

// latencyRows are the operations' latencies at the added round-trip time, beside the round trips in
// sequence of their floors; the first call of a process is startupRow.
func latencyRows(seqs []sequence, rtt time.Duration) []row {
	var rows []row
	for _, op := range opOrder {
		if op == opColdStatus {
			continue
		}
		rows = append(rows, sequentialRow(fmt.Sprintf("latency at %s RTT: %s", ms(rtt), op), seqs, op, rtt))
	}
	return rows
}
