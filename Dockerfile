# The entrypoint image. Its only job is Tekton's init-copy: the `prepare` init container runs
#   /ko-app/entrypoint init /ko-app/entrypoint /tekton/bin/entrypoint step-<name>...
# which copies the executable into the pod's shared /tekton/bin volume. dist/bin/ is the static
# launcher `entrypoint` and the bundle directory beside it; copying the launcher copies the bundle
# along (the volume must not be mounted over /ko-app, where the init container's own binary is).
# It is built from the self-contained executable in dist/bin/ (`make binary`); no registry pull.
# Build: `make image` (images/build.sh, which also gives the engine a context of dist/bin/ only).
FROM scratch
COPY dist/bin/ /ko-app/
ENTRYPOINT ["/ko-app/entrypoint"]
