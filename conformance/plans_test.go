package conformance

import "testing"

// TestEveryPlannedModuleIsImplemented keeps the plans and the module table
// in step.
func TestEveryPlannedModuleIsImplemented(t *testing.T) {
	for name, runs := range testPlans {
		for _, rn := range runs {
			for _, m := range rn.modules {
				if moduleFuncs[m] == nil {
					t.Errorf("%s lists %s, which has no implementation", name, m)
				}
			}
		}
	}
}
