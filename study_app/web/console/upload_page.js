// The cohort upload page: sends the chosen zip as the raw body of PUT /console/upload/<study id>, so the
// server can stream it to disk; shows progress, then what to do next or why it was refused.
(() => {
  const form = document.getElementById("upload");
  const status = document.getElementById("status");
  const progress = document.getElementById("progress");
  const mb = (n) => `${(n / 1048576).toFixed(1)} MB`;

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const study = form.elements.study.value.trim();
    const file = form.elements.file.files[0];
    if (!study || !file) return;
    const request = new XMLHttpRequest();
    request.open("PUT", `/console/upload/${encodeURIComponent(study)}`);
    request.setRequestHeader("X-Readerstudy-Client", "1");
    request.setRequestHeader("Content-Type", "application/zip");
    request.upload.onprogress = (e) => {
      if (e.lengthComputable) { progress.value = e.loaded / e.total; status.textContent = `${mb(e.loaded)} of ${mb(e.total)}`; }
    };
    request.onload = () => {
      let data = {};
      try { data = JSON.parse(request.responseText); } catch (e) { data = {}; }
      if (request.status === 200) {
        status.textContent = `Uploaded ${file.name} (${mb(data.size_bytes)}) for study '${data.study_id}'. ` +
          "On the Studies page, enter this study id, choose the uploaded zip, and create the study.";
        status.dataset.result = "uploaded";
      } else {
        status.textContent = `Not uploaded: ${data.error || `the server answered ${request.status}`}`;
        status.dataset.result = "refused";
      }
      form.querySelector("button").disabled = false;
    };
    request.onerror = () => {
      status.textContent = "Not uploaded: the connection to the server broke off. Try again.";
      status.dataset.result = "refused";
      form.querySelector("button").disabled = false;
    };
    form.querySelector("button").disabled = true;
    progress.hidden = false;
    progress.value = 0;
    status.dataset.result = "";
    request.send(file);
  });
})();
