// Command vcd-conformance does, with VMware's Go SDK for Cloud Director (go-vcloud-director), what a VCD
// administrator's tools do, against the endpoint in VCD_URL: read the API versions, log in as provider,
// create an organization and find it by name, create a user with a role and change the role, create an
// Org VDC and wait for its task, query VDC records, read the audit trail, then disable and delete the
// VDC, the user and the organization. It prints each step and exits non-zero at the first failure.
//
// It trusts the endpoint's certificate through the system pool (SSL_CERT_FILE): the SDK has no option
// for a CA bundle, and its `insecure` flag stays off.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/vmware/go-vcloud-director/v3/govcd"
	"github.com/vmware/go-vcloud-director/v3/types/v56"
)

// settings come from the environment, so the Rust test that starts the emulator passes them through.
type settings struct {
	url, user, password, apiToken     string
	providerVdc, storageProfile, pool string
	name                              string
}

func env(key, fallback string) string {
	if value := os.Getenv(key); value != "" {
		return value
	}
	return fallback
}

func main() {
	s := settings{
		url:            os.Getenv("VCD_URL"),
		user:           env("VCD_USER", "administrator"),
		password:       os.Getenv("VCD_PASSWORD"),
		apiToken:       os.Getenv("VCD_API_TOKEN"),
		providerVdc:    env("VCD_PROVIDER_VDC", "navigator-pvdc"),
		storageProfile: env("VCD_STORAGE_PROFILE", "gold"),
		pool:           env("VCD_NETWORK_POOL", "navigator-pool"),
		name:           env("VCD_NAME", "conformance"),
	}
	if s.url == "" || s.password == "" {
		fmt.Fprintln(os.Stderr, "set VCD_URL and VCD_PASSWORD (and SSL_CERT_FILE to the endpoint's CA)")
		os.Exit(2)
	}
	if err := run(s); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("PASS: every step conformed")
}

func step(format string, args ...any) {
	fmt.Printf("ok   "+format+"\n", args...)
}

func ptr[T any](v T) *T { return &v }

func expect(condition bool, format string, args ...any) error {
	if condition {
		return nil
	}
	return fmt.Errorf(format, args...)
}

func run(s settings) error {
	endpoint, err := url.Parse(s.url)
	if err != nil {
		return fmt.Errorf("VCD_URL: %w", err)
	}
	vcd := govcd.NewVCDClient(*endpoint, false)

	// Versions and login.
	if err := vcd.Authenticate(s.user, s.password, "System"); err != nil {
		return fmt.Errorf("provider login: %w", err)
	}
	highest, err := vcd.Client.MaxSupportedVersion()
	if err != nil {
		return fmt.Errorf("versions: %w", err)
	}
	step("versions read (client uses %s, highest served %s); logged in as %s@System", vcd.Client.APIVersion, highest, s.user)
	defer func() {
		if err := vcd.Disconnect(); err != nil {
			fmt.Fprintf(os.Stderr, "logout: %v\n", err)
		}
	}()

	// Organization.
	orgName := "conf-" + s.name
	if _, err := vcd.GetAdminOrgByName(orgName); !errors.Is(err, govcd.ErrorEntityNotFound) {
		return fmt.Errorf("org %s before creation: want not found, got %v", orgName, err)
	}
	settings := &types.OrgSettings{OrgGeneralSettings: &types.OrgGeneralSettings{}}
	task, err := govcd.CreateOrg(vcd, orgName, "Conformance Org", "made by vcd-conformance", settings, true)
	if err != nil {
		return fmt.Errorf("create org: %w", err)
	}
	if task.Task.Tasks == nil || len(task.Task.Tasks.Task) == 0 {
		return fmt.Errorf("create org: the answer embeds no task")
	}
	created := govcd.NewTask(&vcd.Client)
	created.Task = task.Task.Tasks.Task[0]
	if err := created.WaitTaskCompletion(); err != nil {
		return fmt.Errorf("org create task: %w", err)
	}
	if err := expect(created.Task.Owner != nil && created.Task.Owner.Name == orgName,
		"org create task: owner %+v", created.Task.Owner); err != nil {
		return err
	}
	step("organization %s created; its task %s ended %s", orgName, created.Task.ID, created.Task.Status)
	adminOrg, err := vcd.GetAdminOrgByName(orgName)
	if err != nil {
		return fmt.Errorf("find org by name: %w", err)
	}
	if err := expect(adminOrg.AdminOrg.IsEnabled && adminOrg.AdminOrg.FullName == "Conformance Org",
		"org read back: enabled %v, full name %q", adminOrg.AdminOrg.IsEnabled, adminOrg.AdminOrg.FullName); err != nil {
		return err
	}
	step("organization found by name: %s (%s)", adminOrg.AdminOrg.Name, adminOrg.AdminOrg.ID)
	orgs, err := vcd.GetAllOrgs(url.Values{"filter": []string{"name==" + orgName}}, false)
	if err != nil {
		return fmt.Errorf("CloudAPI orgs: %w", err)
	}
	if err := expect(len(orgs) == 1 && orgs[0].Org.Id == adminOrg.AdminOrg.ID,
		"CloudAPI orgs filtered by name: %d found", len(orgs)); err != nil {
		return err
	}
	step("organization found through the CloudAPI with a name filter")
	if _, err := govcd.CreateOrg(vcd, orgName, "Again", "", settings, true); !isDuplicate(err) {
		return fmt.Errorf("second org with the same name: want 400 already exists, got %v", err)
	}
	step("a second organization with the same name is refused (400 DUPLICATE_NAME)")

	// Roles (CloudAPI, tenant context) followed page by page, and a user.
	roles, err := adminOrg.GetAllRoles(url.Values{"pageSize": []string{"2"}})
	if err != nil {
		return fmt.Errorf("roles: %w", err)
	}
	if err := expect(len(roles) == 6, "roles of the new org over pages of 2: %d", len(roles)); err != nil {
		return err
	}
	role, err := adminOrg.GetRoleByName("vApp Author")
	if err != nil {
		return fmt.Errorf("role by name: %w", err)
	}
	step("%d roles read in pages of 2; role %q is %s", len(roles), role.Role.Name, role.Role.ID)
	user, err := adminOrg.CreateUserSimple(govcd.OrgUserConfiguration{
		Name: "bob", Password: "conformance-password-1", RoleName: "vApp Author",
		ProviderType: govcd.OrgUserProviderIntegrated, IsEnabled: true, FullName: "Bob",
	})
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	if err := expect(user.User.Role != nil && strings.HasSuffix(role.Role.ID, lastSegment(user.User.Role.HREF)),
		"user role %+v is not %s", user.User.Role, role.Role.ID); err != nil {
		return err
	}
	step("user bob created with role %s", user.User.Role.Name)
	if err := user.UpdateSimple(govcd.OrgUserConfiguration{RoleName: "Organization Administrator", IsEnabled: true}); err != nil {
		return fmt.Errorf("change user role: %w", err)
	}
	user, err = adminOrg.GetUserByName("bob", true)
	if err != nil {
		return fmt.Errorf("find user: %w", err)
	}
	if err := expect(user.User.Role.Name == "Organization Administrator", "role after update: %s", user.User.Role.Name); err != nil {
		return err
	}
	step("user bob found by name, role changed to %s", user.User.Role.Name)
	if s.apiToken != "" {
		if err := apiTokenCannotManageUsers(endpoint, s.apiToken, orgName); err != nil {
			return err
		}
	}

	// Org VDC.
	pvdcs, err := govcd.QueryProviderVdcByName(vcd, s.providerVdc)
	if err != nil || len(pvdcs) != 1 {
		return fmt.Errorf("provider VDC %s: %d found, %v", s.providerVdc, len(pvdcs), err)
	}
	profile, err := vcd.QueryProviderVdcStorageProfileByName(s.storageProfile, pvdcs[0].HREF)
	if err != nil {
		return fmt.Errorf("storage profile %s: %w", s.storageProfile, err)
	}
	pools, err := govcd.QueryNetworkPoolByName(vcd, s.pool)
	if err != nil || len(pools) != 1 {
		return fmt.Errorf("network pool %s: %d found, %v", s.pool, len(pools), err)
	}
	step("provider VDC, storage profile and network pool looked up by name")
	vdcName := orgName + "-vdc"
	config := &types.VdcConfiguration{
		Name:            vdcName,
		Description:     "made by vcd-conformance",
		AllocationModel: "Flex",
		ComputeCapacity: []*types.ComputeCapacity{{
			CPU:    &types.CapacityWithUsage{Units: "MHz", Allocated: 4000, Limit: 4000},
			Memory: &types.CapacityWithUsage{Units: "MB", Allocated: 8192, Limit: 8192},
		}},
		VdcStorageProfile: []*types.VdcStorageProfileConfiguration{{
			Enabled: ptr(true), Units: "MB", Limit: 10240, Default: true,
			ProviderVdcStorageProfile: &types.Reference{HREF: profile.HREF},
		}},
		NetworkPoolReference:  &types.Reference{HREF: pools[0].HREF},
		ProviderVdcReference:  &types.Reference{HREF: pvdcs[0].HREF},
		IsEnabled:             true,
		IsThinProvision:       true,
		UsesFastProvisioning:  true,
		VCpuInMhz:             2000,
		IsElastic:             ptr(false),
		IncludeMemoryOverhead: ptr(true),
	}
	vdc, err := adminOrg.CreateOrgVdc(config)
	if err != nil {
		return fmt.Errorf("create VDC: %w", err)
	}
	if err := expect(vdc.Vdc.Status == 1 && vdc.Vdc.IsEnabled, "new VDC: status %d, enabled %v", vdc.Vdc.Status, vdc.Vdc.IsEnabled); err != nil {
		return err
	}
	step("Org VDC %s created (Flex), its task waited for, read back ready", vdcName)
	if _, err := adminOrg.CreateOrgVdcAsync(config); !isDuplicate(err) {
		return fmt.Errorf("second VDC with the same name: want 400 already exists, got %v", err)
	}
	step("a second VDC with the same name is refused (400 DUPLICATE_NAME)")

	records, err := vcd.QueryWithNotEncodedParams(nil, map[string]string{
		"type": "adminOrgVdc", "filter": "name==" + url.QueryEscape(vdcName), "filterEncoded": "true",
	})
	if err != nil {
		return fmt.Errorf("query VDC records: %w", err)
	}
	vdcRecords := records.Results.OrgVdcAdminRecord
	if len(vdcRecords) != 1 {
		return fmt.Errorf("VDC records named %s: %d found", vdcName, len(vdcRecords))
	}
	record := vdcRecords[0]
	cpu, memory, storage := value(record.CpuAllocationMhz), value(record.MemoryAllocationMB), value(record.StorageLimitMB)
	if err := expect(record.OrgName == orgName && cpu == 4000 && memory == 8192 && storage == 10240,
		"VDC record: org %s, %d MHz, %d MB, %d MB", record.OrgName, cpu, memory, storage); err != nil {
		return err
	}
	step("VDC record: org %s, %d MHz, %d MB memory, %d MB storage", record.OrgName, cpu, memory, storage)

	adminVdc, err := adminOrg.GetAdminVDCByName(vdcName, true)
	if err != nil {
		return fmt.Errorf("find admin VDC: %w", err)
	}
	adminVdc.AdminVdc.ComputeCapacity[0].CPU.Allocated = 6000
	adminVdc.AdminVdc.ComputeCapacity[0].CPU.Limit = 6000
	if _, err := adminVdc.Update(); err != nil {
		return fmt.Errorf("resize VDC: %w", err)
	}
	if err := expect(adminVdc.AdminVdc.ComputeCapacity[0].CPU.Allocated == 6000, "CPU after resize: %d",
		adminVdc.AdminVdc.ComputeCapacity[0].CPU.Allocated); err != nil {
		return err
	}
	step("VDC resized to 6000 MHz (PUT, task waited for)")
	adminVdc.AdminVdc.IsEnabled = false
	if _, err := adminVdc.Update(); err != nil {
		return fmt.Errorf("disable VDC: %w", err)
	}
	if err := expect(!adminVdc.AdminVdc.IsEnabled, "VDC still enabled"); err != nil {
		return err
	}
	step("VDC disabled")
	if err := auditTrail(vcd, orgName); err != nil {
		return err
	}

	tenantVdc, err := adminOrg.GetVDCByName(vdcName, true)
	if err != nil {
		return fmt.Errorf("find VDC: %w", err)
	}
	if err := tenantVdc.DeleteWait(true, true); err != nil {
		return fmt.Errorf("delete VDC: %w", err)
	}
	if _, err := adminOrg.GetVDCByName(vdcName, true); !errors.Is(err, govcd.ErrorEntityNotFound) {
		return fmt.Errorf("VDC after deletion: want not found, got %v", err)
	}
	step("VDC deleted (task waited for) and gone")

	if err := user.Delete(false); err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	step("user bob deleted")
	if err := adminOrg.Refresh(); err != nil {
		return fmt.Errorf("refresh org: %w", err)
	}
	if err := adminOrg.Disable(); err != nil {
		return fmt.Errorf("disable org: %w", err)
	}
	if err := adminOrg.Delete(true, true); err != nil {
		return fmt.Errorf("delete org: %w", err)
	}
	if _, err := vcd.GetAdminOrgByName(orgName); !errors.Is(err, govcd.ErrorEntityNotFound) {
		return fmt.Errorf("org after deletion: want not found, got %v", err)
	}
	step("organization disabled, deleted (task waited for) and gone")
	return nil
}

// apiTokenCannotManageUsers logs in with an API token and checks that VCD's rule holds: such sessions
// read, but may not manage users.
func apiTokenCannotManageUsers(endpoint *url.URL, token, orgName string) error {
	client := govcd.NewVCDClient(*endpoint, false)
	if err := client.SetToken("System", govcd.ApiTokenHeader, token); err != nil {
		return fmt.Errorf("API token login: %w", err)
	}
	org, err := client.GetAdminOrgByName(orgName)
	if err != nil {
		return fmt.Errorf("API token session reading the org: %w", err)
	}
	_, err = org.CreateUserSimple(govcd.OrgUserConfiguration{
		Name: "eve", Password: "conformance-password-2", RoleName: "vApp User", IsEnabled: true,
	})
	if err == nil || !strings.Contains(err.Error(), "API Error: 403") {
		return fmt.Errorf("user creation with an API token session: want 403, got %v", err)
	}
	step("API token session reads the org but may not create users")
	return nil
}

// auditEvent is the part of a CloudAPI audit trail event the check reads.
type auditEvent struct {
	EventType            string                `json:"eventType"`
	Timestamp            string                `json:"timestamp"`
	Tenant               struct{ Name string } `json:"tenant"`
	AdditionalProperties map[string]string     `json:"additionalProperties"`
}

// auditTrail reads the org's VDC events through the CloudAPI, one per page, following the Link headers.
func auditTrail(vcd *govcd.VCDClient, orgName string) error {
	endpoint, err := vcd.Client.OpenApiBuildEndpoint("1.0.0/auditTrail/")
	if err != nil {
		return err
	}
	var events []auditEvent
	params := url.Values{"filter": []string{"tenant.name==" + orgName}, "pageSize": []string{"1"}}
	if err := vcd.Client.OpenApiGetAllItems(vcd.Client.APIVersion, endpoint, params, &events, nil); err != nil {
		return fmt.Errorf("audit trail: %w", err)
	}
	types := make([]string, len(events))
	for i, event := range events {
		types[i] = event.EventType
	}
	want := []string{"com/vmware/cloud/event/vdc/create", "com/vmware/cloud/event/vdc/modify", "com/vmware/cloud/event/vdc/modify"}
	if err := expect(strings.Join(types, " ") == strings.Join(want, " "), "audit events %v, want %v", types, want); err != nil {
		return err
	}
	if err := expect(events[1].AdditionalProperties["vdc.cpu.allocated.mhz"] == "6000" &&
		events[0].AdditionalProperties["vdc.cpu.speed.mhz"] == "2000",
		"audit properties %v", events[1].AdditionalProperties); err != nil {
		return err
	}
	encoded, _ := json.Marshal(events[0].AdditionalProperties)
	step("audit trail: %d VDC events over %d pages; create recorded %s", len(events), len(events), encoded)
	return nil
}

// isDuplicate tells VCD's DUPLICATE_NAME refusal; the SDK's error text keeps the status and message (not
// the minor code).
func isDuplicate(err error) bool {
	return err != nil && strings.Contains(err.Error(), "API Error: 400") && strings.Contains(err.Error(), "already exists")
}

func value(v *int) int {
	if v == nil {
		return -1
	}
	return *v
}

func lastSegment(href string) string {
	return href[strings.LastIndex(href, "/")+1:]
}
