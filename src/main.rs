//! Entry point of the web app: mounts [`peercall::app::App`] on `<body>`.

fn main() {
    yew::Renderer::<peercall::app::App>::new().render();
}
