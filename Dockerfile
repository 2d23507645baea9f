# The entrypoint image. Its only job is Tekton's init-copy: the `prepare` init container runs
#   /ko-app/entrypoint init /ko-app/entrypoint /tekton/bin/entrypoint step-<name>...
# which copies the executable into the pod's shared /tekton/bin volume.
# It is built from the self-contained executable in dist/bin/ (`make binary`); no registry pull.
FROM scratch
COPY dist/bin/ /ko-app/
ENTRYPOINT ["/ko-app/entrypoint"]
