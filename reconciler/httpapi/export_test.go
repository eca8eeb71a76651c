package httpapi

// HoldPlanSlots takes every plan slot, as plans running would, until release.
func HoldPlanSlots(s *Server) (release func()) {
	for range cap(s.plans) {
		s.plans <- struct{}{}
	}
	return func() {
		for range cap(s.plans) {
			<-s.plans
		}
	}
}
