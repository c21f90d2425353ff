package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/dagflow/dagflow"
)

// schedule is POST /v1/schedules {"id", "cron", "timezone", "workflow"}:
// 201 and the schedule with its next tick, or 200 when it replaced the
// schedule of that id.
func (a *API) schedule(r *http.Request, body []byte) (int, any, error) {
	var in struct {
		ID       string          `json:"id"`
		Cron     string          `json:"cron"`
		Timezone string          `json:"timezone"`
		Workflow json.RawMessage `json:"workflow"`
	}
	if err := decodeStrict(body, &in); err != nil {
		return 0, nil, err
	}
	if len(in.Workflow) == 0 {
		return 0, nil, errorf(http.StatusBadRequest, "invalid schedule %q: workflow: is required", in.ID)
	}
	wf, err := scheduledWorkflow(in.Workflow)
	if err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	old, err := a.info(r, in.ID)
	if err != nil {
		return 0, nil, err
	}
	err = a.eng.Schedule(ctx, dagflow.Schedule{ID: in.ID, Cron: in.Cron, Timezone: in.Timezone, Workflow: wf})
	if err != nil {
		return 0, nil, err
	}
	s, err := a.info(r, in.ID)
	switch {
	case err != nil:
		return 0, nil, err
	case s == nil:
		return 0, nil, errorf(http.StatusConflict, "the schedule %q was removed as it was added", in.ID)
	case old != nil:
		return http.StatusOK, s, nil
	}
	return http.StatusCreated, s, nil
}

// scheduledWorkflow reads the workflow of a schedule, whose id is left
// out (each tick names its run). Its problems are placed under
// "workflow.".
func scheduledWorkflow(raw json.RawMessage) (dagflow.Workflow, error) {
	wf, err := dagflow.ParseWorkflow(raw)
	var ve *dagflow.ValidationError
	if !errors.As(err, &ve) {
		return wf, err
	}
	var ps []dagflow.Problem
	for _, p := range ve.Problems {
		if p.Path == "id" && wf.ID == "" {
			continue
		}
		p.Path = "workflow." + p.Path
		if p.Path == "workflow." {
			p.Path = "workflow"
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return wf, nil
	}
	return wf, invalid("schedule", "", ps)
}

// info returns the schedule id as the list shows it, or nil.
func (a *API) info(r *http.Request, id string) (*dagflow.ScheduleInfo, error) {
	list, err := a.eng.Schedules(r.Context())
	if err != nil {
		return nil, err
	}
	for i := range list {
		if list[i].ID == id {
			return &list[i], nil
		}
	}
	return nil, nil
}

// schedules is GET /v1/schedules: every schedule, by id, with its next
// tick.
func (a *API) schedules(r *http.Request, _ []byte) (int, any, error) {
	list, err := a.eng.Schedules(r.Context())
	if err != nil {
		return 0, nil, err
	}
	if list == nil {
		list = []dagflow.ScheduleInfo{}
	}
	return http.StatusOK, struct {
		Schedules []dagflow.ScheduleInfo `json:"schedules"`
	}{list}, nil
}

// unschedule is DELETE /v1/schedules/{id}: 204; the runs the schedule
// created stay.
func (a *API) unschedule(r *http.Request, _ []byte) (int, any, error) {
	if err := a.eng.Unschedule(r.Context(), r.PathValue("id")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}
