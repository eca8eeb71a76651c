package desired

// The Go shape of the objects the schema accepts, for decoding a validated
// CUE value. Field names follow Kubernetes; only what schema.cue allows is
// here, and the schema, not these types, decides what is valid.

type objectMeta struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type templateMeta struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type keySelector struct {
	Name     string `json:"name"`
	Key      string `json:"key"`
	Optional bool   `json:"optional"`
}

type k8sEnvVar struct {
	Name      string  `json:"name"`
	Value     *string `json:"value"`
	ValueFrom *struct {
		ConfigMapKeyRef  *keySelector         `json:"configMapKeyRef"`
		SecretKeyRef     *keySelector         `json:"secretKeyRef"`
		FieldRef         *k8sFieldRef         `json:"fieldRef"`
		ResourceFieldRef *k8sResourceFieldRef `json:"resourceFieldRef"`
	} `json:"valueFrom"`
}

// k8sFieldRef and k8sResourceFieldRef are the downward API's selectors,
// in env and in downwardAPI volumes.
type k8sFieldRef struct {
	FieldPath string `json:"fieldPath"`
}

type k8sResourceFieldRef struct {
	ContainerName string `json:"containerName"`
	Resource      string `json:"resource"`
	Divisor       any    `json:"divisor"`
}

type nameRef struct {
	Name     string `json:"name"`
	Optional bool   `json:"optional"`
}

type k8sEnvFrom struct {
	Prefix       string   `json:"prefix"`
	ConfigMapRef *nameRef `json:"configMapRef"`
	SecretRef    *nameRef `json:"secretRef"`
}

type k8sPort struct {
	ContainerPort int    `json:"containerPort"`
	HostPort      int    `json:"hostPort"`
	HostIP        string `json:"hostIP"`
	Name          string `json:"name"`
	Protocol      string `json:"protocol"`
}

// resourceList is a container's requests or limits by resource name
// (cpu, memory, ephemeral-storage, hugepages-<size>, extended resources).
type resourceList map[string]any

// k8sHandler is a lifecycle hook: a probe's exec or httpGet, or a sleep.
type k8sHandler struct {
	k8sProbe
	Sleep *struct {
		Seconds int `json:"seconds"`
	} `json:"sleep"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path        string `json:"path"`
		Port        any    `json:"port"`
		Host        string `json:"host"`
		Scheme      string `json:"scheme"`
		HTTPHeaders []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"httpHeaders"`
	} `json:"httpGet"`
	TCPSocket *struct {
		Port any `json:"port"`
	} `json:"tcpSocket"`
	GRPC *struct {
		Port    int     `json:"port"`
		Service *string `json:"service"`
	} `json:"grpc"`
	Exec *struct {
		Command []string `json:"command"`
	} `json:"exec"`
	InitialDelaySeconds           *int `json:"initialDelaySeconds"`
	PeriodSeconds                 *int `json:"periodSeconds"`
	TimeoutSeconds                *int `json:"timeoutSeconds"`
	SuccessThreshold              *int `json:"successThreshold"`
	FailureThreshold              *int `json:"failureThreshold"`
	TerminationGracePeriodSeconds *int `json:"terminationGracePeriodSeconds"`
}

type k8sVolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly"`
	SubPath   string `json:"subPath"`
}

type k8sContainer struct {
	Name string `json:"name"`
	// RestartPolicy Always makes an init container a sidecar.
	RestartPolicy   string       `json:"restartPolicy"`
	Image           string       `json:"image"`
	ImagePullPolicy string       `json:"imagePullPolicy"`
	Command         []string     `json:"command"`
	Args            []string     `json:"args"`
	WorkingDir      string       `json:"workingDir"`
	Env             []k8sEnvVar  `json:"env"`
	EnvFrom         []k8sEnvFrom `json:"envFrom"`
	Ports           []k8sPort    `json:"ports"`
	Resources       struct {
		Requests resourceList `json:"requests"`
		Limits   resourceList `json:"limits"`
	} `json:"resources"`
	SecurityContext *struct {
		RunAsUser                *int64          `json:"runAsUser"`
		RunAsGroup               *int64          `json:"runAsGroup"`
		RunAsNonRoot             *bool           `json:"runAsNonRoot"`
		ReadOnlyRootFilesystem   bool            `json:"readOnlyRootFilesystem"`
		Privileged               bool            `json:"privileged"`
		AllowPrivilegeEscalation *bool           `json:"allowPrivilegeEscalation"`
		SeccompProfile           *seccompProfile `json:"seccompProfile"`
		Capabilities             *struct {
			Add  []string `json:"add"`
			Drop []string `json:"drop"`
		} `json:"capabilities"`
	} `json:"securityContext"`
	Lifecycle *struct {
		PostStart *k8sHandler `json:"postStart"`
		PreStop   *k8sHandler `json:"preStop"`
	} `json:"lifecycle"`
	LivenessProbe  *k8sProbe        `json:"livenessProbe"`
	ReadinessProbe *k8sProbe        `json:"readinessProbe"`
	StartupProbe   *k8sProbe        `json:"startupProbe"`
	VolumeMounts   []k8sVolumeMount `json:"volumeMounts"`
}

type seccompProfile struct {
	Type             string `json:"type"`
	LocalhostProfile string `json:"localhostProfile"`
}

// podSecurityContext is a pod's securityContext: defaults for its
// containers, and what only a pod has (groups, sysctls).
type podSecurityContext struct {
	RunAsUser          *int64          `json:"runAsUser"`
	RunAsGroup         *int64          `json:"runAsGroup"`
	RunAsNonRoot       *bool           `json:"runAsNonRoot"`
	FSGroup            *int64          `json:"fsGroup"`
	SupplementalGroups []int64         `json:"supplementalGroups"`
	SeccompProfile     *seccompProfile `json:"seccompProfile"`
	Sysctls            []Sysctl        `json:"sysctls"`
}

type keyToPath struct {
	Key  string `json:"key"`
	Path string `json:"path"`
	Mode *int   `json:"mode"`
}

type k8sVolume struct {
	Name      string `json:"name"`
	Ephemeral *struct {
		VolumeClaimTemplate struct {
			Spec struct {
				Resources struct {
					Requests struct {
						Storage any `json:"storage"`
					} `json:"requests"`
				} `json:"resources"`
			} `json:"spec"`
		} `json:"volumeClaimTemplate"`
	} `json:"ephemeral"`
	EmptyDir *struct {
		Medium    string `json:"medium"`
		SizeLimit any    `json:"sizeLimit"`
	} `json:"emptyDir"`
	HostPath *struct {
		Path string `json:"path"`
		Type string `json:"type"`
	} `json:"hostPath"`
	ConfigMap *struct {
		Name        string      `json:"name"`
		Items       []keyToPath `json:"items"`
		DefaultMode *int        `json:"defaultMode"`
		Optional    bool        `json:"optional"`
	} `json:"configMap"`
	Secret *struct {
		SecretName  string      `json:"secretName"`
		Items       []keyToPath `json:"items"`
		DefaultMode *int        `json:"defaultMode"`
		Optional    bool        `json:"optional"`
	} `json:"secret"`
	DownwardAPI *struct {
		Items       []downwardItem `json:"items"`
		DefaultMode *int           `json:"defaultMode"`
	} `json:"downwardAPI"`
	Projected *struct {
		Sources []struct {
			ConfigMap *struct {
				Name     string      `json:"name"`
				Items    []keyToPath `json:"items"`
				Optional bool        `json:"optional"`
			} `json:"configMap"`
			Secret *struct {
				Name     string      `json:"name"`
				Items    []keyToPath `json:"items"`
				Optional bool        `json:"optional"`
			} `json:"secret"`
			DownwardAPI *struct {
				Items []downwardItem `json:"items"`
			} `json:"downwardAPI"`
			ServiceAccountToken *struct {
				Path string `json:"path"`
			} `json:"serviceAccountToken"`
		} `json:"sources"`
		DefaultMode *int `json:"defaultMode"`
	} `json:"projected"`
	PersistentVolumeClaim *k8sClaimSource `json:"persistentVolumeClaim"`
}

type k8sClaimSource struct {
	ClaimName string `json:"claimName"`
	ReadOnly  bool   `json:"readOnly"`
}

// labelSelector is a manifest's label selector, read as the model's.
type labelSelector = LabelSelector

type nodeSelectorTerm struct {
	MatchExpressions []Requirement `json:"matchExpressions"`
	MatchFields      []Requirement `json:"matchFields"`
}

type k8sPodAffinity struct {
	Required  []podAffinityTerm `json:"requiredDuringSchedulingIgnoredDuringExecution"`
	Preferred []struct {
		Weight          int             `json:"weight"`
		PodAffinityTerm podAffinityTerm `json:"podAffinityTerm"`
	} `json:"preferredDuringSchedulingIgnoredDuringExecution"`
}

type k8sNamespace struct {
	Metadata objectMeta `json:"metadata"`
}

type podAffinityTerm struct {
	LabelSelector     *labelSelector `json:"labelSelector"`
	TopologyKey       string         `json:"topologyKey"`
	Namespaces        []string       `json:"namespaces"`
	NamespaceSelector *labelSelector `json:"namespaceSelector"`
}

type k8sPodSpec struct {
	InitContainers                []k8sContainer      `json:"initContainers"`
	Containers                    []k8sContainer      `json:"containers"`
	Volumes                       []k8sVolume         `json:"volumes"`
	RestartPolicy                 string              `json:"restartPolicy"`
	NodeSelector                  map[string]string   `json:"nodeSelector"`
	TerminationGracePeriodSeconds *int                `json:"terminationGracePeriodSeconds"`
	HostNetwork                   bool                `json:"hostNetwork"`
	HostPID                       bool                `json:"hostPID"`
	HostIPC                       bool                `json:"hostIPC"`
	Subdomain                     string              `json:"subdomain"`
	ServiceAccount                string              `json:"serviceAccount"`
	DNSPolicy                     string              `json:"dnsPolicy"`
	Hostname                      string              `json:"hostname"`
	ServiceAccountName            string              `json:"serviceAccountName"`
	AutomountServiceAccountToken  *bool               `json:"automountServiceAccountToken"`
	PriorityClassName             string              `json:"priorityClassName"`
	SecurityContext               *podSecurityContext `json:"securityContext"`
	ImagePullSecrets              []nameRef           `json:"imagePullSecrets"`
	TopologySpreadConstraints     []struct {
		MaxSkew           int            `json:"maxSkew"`
		TopologyKey       string         `json:"topologyKey"`
		WhenUnsatisfiable string         `json:"whenUnsatisfiable"`
		LabelSelector     *labelSelector `json:"labelSelector"`
	} `json:"topologySpreadConstraints"`
	Affinity *struct {
		PodAntiAffinity *k8sPodAffinity `json:"podAntiAffinity"`
		PodAffinity     *k8sPodAffinity `json:"podAffinity"`
		NodeAffinity    *struct {
			Required *struct {
				Terms []nodeSelectorTerm `json:"nodeSelectorTerms"`
			} `json:"requiredDuringSchedulingIgnoredDuringExecution"`
			Preferred []struct {
				Weight     int              `json:"weight"`
				Preference nodeSelectorTerm `json:"preference"`
			} `json:"preferredDuringSchedulingIgnoredDuringExecution"`
		} `json:"nodeAffinity"`
	} `json:"affinity"`
	Tolerations []Toleration `json:"tolerations"`
}

type k8sPodTemplate struct {
	Metadata templateMeta `json:"metadata"`
	Spec     k8sPodSpec   `json:"spec"`
}

type k8sDeployment struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Replicas *int           `json:"replicas"`
		Selector *labelSelector `json:"selector"`
		Template k8sPodTemplate `json:"template"`
		Strategy struct {
			Type          string            `json:"type"`
			RollingUpdate *k8sRollingUpdate `json:"rollingUpdate"`
		} `json:"strategy"`
		MinReadySeconds         int  `json:"minReadySeconds"`
		RevisionHistoryLimit    *int `json:"revisionHistoryLimit"`
		ProgressDeadlineSeconds *int `json:"progressDeadlineSeconds"`
		Paused                  bool `json:"paused"`
	} `json:"spec"`
}

type k8sJobSpec struct {
	Template                k8sPodTemplate `json:"template"`
	CompletionMode          string         `json:"completionMode"`
	Suspend                 bool           `json:"suspend"`
	Completions             *int           `json:"completions"`
	Parallelism             *int           `json:"parallelism"`
	BackoffLimit            *int           `json:"backoffLimit"`
	ActiveDeadlineSeconds   *int           `json:"activeDeadlineSeconds"`
	TTLSecondsAfterFinished *int           `json:"ttlSecondsAfterFinished"`
}

type k8sJob struct {
	Metadata objectMeta `json:"metadata"`
	Spec     k8sJobSpec `json:"spec"`
}

type k8sCronJob struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Schedule                   string `json:"schedule"`
		TimeZone                   string `json:"timeZone"`
		ConcurrencyPolicy          string `json:"concurrencyPolicy"`
		Suspend                    bool   `json:"suspend"`
		StartingDeadlineSeconds    *int   `json:"startingDeadlineSeconds"`
		SuccessfulJobsHistoryLimit *int   `json:"successfulJobsHistoryLimit"`
		FailedJobsHistoryLimit     *int   `json:"failedJobsHistoryLimit"`
		JobTemplate                struct {
			Spec k8sJobSpec `json:"spec"`
		} `json:"jobTemplate"`
	} `json:"spec"`
}

type k8sConfigMap struct {
	Metadata   objectMeta        `json:"metadata"`
	Data       map[string]string `json:"data"`
	BinaryData map[string]string `json:"binaryData"`
	Immutable  bool              `json:"immutable"`
}

type k8sSecret struct {
	Metadata   objectMeta        `json:"metadata"`
	Type       string            `json:"type"`
	Data       map[string]string `json:"data"`
	StringData map[string]string `json:"stringData"`
	Immutable  bool              `json:"immutable"`
}

type k8sSealedSecret struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Type          string            `json:"type"`
		EncryptedData map[string]string `json:"encryptedData"`
	} `json:"spec"`
}

type k8sPVC struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		AccessModes []string `json:"accessModes"`
		Resources   struct {
			Requests struct {
				Storage any `json:"storage"`
			} `json:"requests"`
		} `json:"resources"`
		StorageClassName string         `json:"storageClassName"`
		VolumeName       string         `json:"volumeName"`
		Selector         *labelSelector `json:"selector"`
	} `json:"spec"`
}

type k8sService struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Type                  string `json:"type"`
		ClusterIP             string `json:"clusterIP"`
		SessionAffinity       string `json:"sessionAffinity"`
		SessionAffinityConfig struct {
			ClientIP struct {
				TimeoutSeconds *int `json:"timeoutSeconds"`
			} `json:"clientIP"`
		} `json:"sessionAffinityConfig"`
		ExternalTrafficPolicy    string            `json:"externalTrafficPolicy"`
		InternalTrafficPolicy    string            `json:"internalTrafficPolicy"`
		PublishNotReadyAddresses bool              `json:"publishNotReadyAddresses"`
		IPFamilies               []string          `json:"ipFamilies"`
		IPFamilyPolicy           string            `json:"ipFamilyPolicy"`
		ClusterIPs               []string          `json:"clusterIPs"`
		Selector                 map[string]string `json:"selector"`
		Ports                    []struct {
			Name       string `json:"name"`
			Protocol   string `json:"protocol"`
			Port       int    `json:"port"`
			TargetPort any    `json:"targetPort"`
			NodePort   int    `json:"nodePort"`
		} `json:"ports"`
	} `json:"spec"`
}

type hpaRules struct {
	StabilizationWindowSeconds *int   `json:"stabilizationWindowSeconds"`
	SelectPolicy               string `json:"selectPolicy"`
	Policies                   []struct {
		Type          string `json:"type"`
		Value         int    `json:"value"`
		PeriodSeconds int    `json:"periodSeconds"`
	} `json:"policies"`
}

type k8sHPA struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		ScaleTargetRef struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicas *int `json:"minReplicas"`
		MaxReplicas int  `json:"maxReplicas"`
		// autoscaling/v1's one target (the schema allows it there only).
		TargetCPUUtilizationPercentage *int `json:"targetCPUUtilizationPercentage"`
		Metrics                        []struct {
			Type     string `json:"type"`
			Resource struct {
				Name   string `json:"name"`
				Target struct {
					AverageUtilization int `json:"averageUtilization"`
				} `json:"target"`
			} `json:"resource"`
		} `json:"metrics"`
		Behavior struct {
			ScaleUp   *hpaRules `json:"scaleUp"`
			ScaleDown *hpaRules `json:"scaleDown"`
		} `json:"behavior"`
	} `json:"spec"`
}

type k8sScalingSchedule struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Target struct {
			Name string `json:"name"`
		} `json:"target"`
		TimeZone string `json:"timeZone"`
		Windows  []struct {
			Name     string `json:"name"`
			Schedule string `json:"schedule"`
			Replicas int    `json:"replicas"`
		} `json:"windows"`
	} `json:"spec"`
}

type k8sPod struct {
	Metadata objectMeta `json:"metadata"`
	Spec     k8sPodSpec `json:"spec"`
}

type k8sDaemonSet struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Selector       *labelSelector `json:"selector"`
		Template       k8sPodTemplate `json:"template"`
		UpdateStrategy struct {
			Type          string            `json:"type"`
			RollingUpdate *k8sRollingUpdate `json:"rollingUpdate"`
		} `json:"updateStrategy"`
		MinReadySeconds      int  `json:"minReadySeconds"`
		RevisionHistoryLimit *int `json:"revisionHistoryLimit"`
	} `json:"spec"`
}

type k8sEndpoints struct {
	Metadata objectMeta `json:"metadata"`
	Subsets  []struct {
		Addresses []struct {
			IP string `json:"ip"`
		} `json:"addresses"`
		Ports []struct {
			Name     string `json:"name"`
			Port     int    `json:"port"`
			Protocol string `json:"protocol"`
		} `json:"ports"`
	} `json:"subsets"`
}

type k8sPDB struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Selector                   *labelSelector `json:"selector"`
		MinAvailable               any            `json:"minAvailable"`
		MaxUnavailable             any            `json:"maxUnavailable"`
		UnhealthyPodEvictionPolicy string         `json:"unhealthyPodEvictionPolicy"`
	} `json:"spec"`
}

type k8sStatefulSet struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Replicas             *int           `json:"replicas"`
		Selector             *labelSelector `json:"selector"`
		Template             k8sPodTemplate `json:"template"`
		ServiceName          string         `json:"serviceName"`
		VolumeClaimTemplates []k8sPVC       `json:"volumeClaimTemplates"`
		PodManagementPolicy  string         `json:"podManagementPolicy"`
		UpdateStrategy       struct {
			Type          string `json:"type"`
			RollingUpdate *struct {
				Partition int `json:"partition"`
			} `json:"rollingUpdate"`
		} `json:"updateStrategy"`
		RetentionPolicy struct {
			WhenDeleted string `json:"whenDeleted"`
			WhenScaled  string `json:"whenScaled"`
		} `json:"persistentVolumeClaimRetentionPolicy"`
		MinReadySeconds      int  `json:"minReadySeconds"`
		RevisionHistoryLimit *int `json:"revisionHistoryLimit"`
		Ordinals             struct {
			Start int `json:"start"`
		} `json:"ordinals"`
	} `json:"spec"`
}

type downwardItem struct {
	Path             string               `json:"path"`
	Mode             *int                 `json:"mode"`
	FieldRef         *k8sFieldRef         `json:"fieldRef"`
	ResourceFieldRef *k8sResourceFieldRef `json:"resourceFieldRef"`
}

// k8sRollingUpdate is a Deployment's or DaemonSet's rolling update limits.
type k8sRollingUpdate struct {
	MaxSurge       any `json:"maxSurge"`
	MaxUnavailable any `json:"maxUnavailable"`
}

type k8sReplicationController struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Replicas        *int              `json:"replicas"`
		Selector        map[string]string `json:"selector"`
		Template        k8sPodTemplate    `json:"template"`
		MinReadySeconds int               `json:"minReadySeconds"`
	} `json:"spec"`
}

type k8sNodePool struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Min      int `json:"min"`
		Max      int `json:"max"`
		Template struct {
			Capacity resourceList      `json:"capacity"`
			Labels   map[string]string `json:"labels"`
			Taints   []Taint           `json:"taints"`
		} `json:"template"`
		Provisioner struct {
			Command []string `json:"command"`
			Webhook *struct {
				URL       string `json:"url"`
				SecretRef struct {
					Name string `json:"name"`
					Key  string `json:"key"`
				} `json:"secretRef"`
			} `json:"webhook"`
			Timeout string `json:"timeout"`
		} `json:"provisioner"`
		ScaleUp struct {
			PendingFor  string `json:"pendingFor"`
			JoinTimeout string `json:"joinTimeout"`
		} `json:"scaleUp"`
		ScaleDown struct {
			Enabled              *bool    `json:"enabled"`
			UtilizationThreshold *float64 `json:"utilizationThreshold"`
			UnneededFor          string   `json:"unneededFor"`
			DelayAfterAdd        string   `json:"delayAfterAdd"`
		} `json:"scaleDown"`
	} `json:"spec"`
}
