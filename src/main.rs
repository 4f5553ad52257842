//! Entry point of the web app: mounts [`peercall::app::App`] on `<body>`.

fn main() {
    peercall::web::page::mark("start");
    yew::Renderer::<peercall::app::App>::new().render();
}
